import pickle

import numpy as np
import pytest
import torch

from adascale_rl.elastic.data import load_cifar10, load_data, load_digits_data, load_image_folder


def test_digits_split_is_fixed_disjoint_and_stratified():
    a, b = load_digits_data(0), load_digits_data(0)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (1078, 359, 360)
    c = load_digits_data(1)
    assert not torch.equal(a.y_test, c.y_test)
    assert a.in_channels == 1 and a.input_size == 8 and a.num_classes == 10
    assert set(a.y_test.tolist()) == set(range(10))
    rows = {r.tobytes() for r in a.x_train.numpy()}
    assert not any(r.tobytes() in rows for r in a.x_test.numpy()[:50])  # no leakage (digits has few duplicates)
    assert abs(float(a.x_train.mean())) < 1e-4


def _write_cifar(root, n_per_batch=20, batches=2, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir()
    for i in range(1, batches + 1):
        with open(root / f"data_batch_{i}", "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                         b"labels": [int(x) for x in rng.integers(0, 10, n_per_batch)]}, fh)
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": rng.integers(0, 256, (15, 3072), dtype=np.uint8),
                     b"labels": list(range(10)) + [0] * 5}, fh)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)


def test_cifar10_loader_reads_python_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar(root)
    d = load_data(f"cifar10:{root}", seed=0)
    assert d.name == "cifar10" and d.in_channels == 3 and d.input_size == 32
    assert len(d.y_train) + len(d.y_val) == 40 and len(d.y_test) == 15
    assert d.classes[3] == "c3"
    # channel-major layout: pixel (0,0) of channel 1 is byte 1024 of the row
    with open(root / "test_batch", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")[b"data"][0]
    x0 = d.x_test[0, 1, 0, 0] * d.std[1] + d.mean[1]
    assert abs(float(x0) - raw[1024] / 255.0) < 1e-4


def test_cifar10_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        load_cifar10(tmp_path / "nope")
    root = tmp_path / "c"
    _write_cifar(root)
    (root / "test_batch").unlink()
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(root)
    (root / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(root)


def _write_folder(root, mode="RGB", size=(12, 10), per_class=6):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "owl"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
            img.save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_image_folder_loader(tmp_path):
    _write_folder(tmp_path / "rgb")
    d = load_data(f"folder:{tmp_path / 'rgb'}", seed=0)
    assert d.classes == ["cat", "dog", "owl"] and d.in_channels == 3 and d.input_size == 32
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 18 and len(d.y_test) > 0
    _write_folder(tmp_path / "grey", mode="L")
    g = load_image_folder(tmp_path / "grey", image_size=16)
    assert g.in_channels == 1 and g.input_size == 16


def test_image_folder_errors(tmp_path):
    (tmp_path / "one").mkdir()
    with pytest.raises(ValueError, match="two class"):
        load_image_folder(tmp_path)
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "x.png").write_bytes(b"garbage")
    for i in range(3):
        (tmp_path / "two" / f"{i}.png").write_bytes(b"x")
    with pytest.raises(ValueError):
        load_image_folder(tmp_path)


def test_bad_data_spec():
    with pytest.raises(ValueError, match="digits, cifar10:PATH or folder:PATH"):
        load_data("mnist")


def test_elastic_model_trains_on_folder_data(tmp_path):
    """The same code path works on a user's RGB folder: a branch runs on 3-channel input."""
    from adascale_rl.elastic.network import ElasticNet
    from adascale_rl.elastic.variants import quick_recipe

    _write_folder(tmp_path / "rgb")
    d = load_data(f"folder:{tmp_path / 'rgb'}", seed=0)
    net = ElasticNet(quick_recipe().arch_for(d)).eval()
    out = net(d.x_test, 0.5, 16)
    assert out["final"].shape == (len(d.y_test), 3)
