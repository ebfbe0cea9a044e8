"""Image data for the elastic model: the bundled digits, CIFAR-10 batches, or an image folder.

``load_data(spec, seed)`` takes the ``--data`` value of ``adascale-rl profile``:

- ``digits`` (default): scikit-learn's bundled handwritten digits (1797 8x8 grey images,
  10 classes; shipped inside scikit-learn, nothing is downloaded). Split 60/20/20
  train/val/test, stratified, fixed by the seed.
- ``cifar10:PATH``: a folder in CIFAR-10's "python version" layout: pickled
  ``data_batch_1`` .. ``data_batch_5`` (any non-empty subset) and ``test_batch``, each a
  dict with ``b"data"`` (N x 3072 uint8, channel-major 32x32) and ``b"labels"``; class
  names from ``batches.meta`` if present. Validation = 20 % of the training batches, by seed;
  test = ``test_batch``.
- ``folder:PATH``: one sub-folder per class holding PNG/JPEG/BMP images (read with Pillow),
  resized to ``image_size`` square; grey if every image is grey, else RGB. Split 60/20/20.

Pixels are scaled to [0, 1] and standardised per channel with the training split's mean
and standard deviation. Errors name the path and what is wrong, as ``ValueError``.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class ImageData:
    name: str
    description: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    def subset(self, n_train: int, n_eval: int) -> "ImageData":
        """The first ``n_train`` training and ``n_eval`` val/test images (for smoke runs)."""
        return ImageData(self.name, self.description + f" (subset: {n_train} train, {n_eval} val/test)",
                         self.x_train[:n_train], self.y_train[:n_train], self.x_val[:n_eval], self.y_val[:n_eval],
                         self.x_test[:n_eval], self.y_test[:n_eval], self.classes, self.mean, self.std)

    def split_sizes(self) -> str:
        return f"{len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)} train/val/test"


def _split(n: int, y: np.ndarray, seed: int, fracs: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Stratified index split into parts of sizes (1 - sum(fracs), *fracs), fixed by seed."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fracs) + 1)]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        cuts = []
        acc = 0.0
        for f in fracs:
            acc += f
            cuts.append(int(round(len(idx) * (1 - acc))))
        bounds = [0] + sorted(cuts) + [len(idx)]
        # parts[0] = train (first), then the later fractions in reverse order of cut
        pieces = [idx[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
        parts[0].extend(pieces[0])
        for k, piece in enumerate(reversed(pieces[1:])):
            parts[k + 1].extend(piece)
    return tuple(np.sort(np.array(p, dtype=np.int64)) for p in parts)


def _standardise(x_train: np.ndarray, *others: np.ndarray):
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    out = [torch.from_numpy(((a - mean) / std).astype(np.float32)) for a in (x_train, *others)]
    return out, mean.ravel().tolist(), std.ravel().tolist()


def _finish(name, description, x, y, train, val, test, classes) -> ImageData:
    (xt, xv, xs), mean, std = _standardise(x[train], x[val], x[test])
    ys = [torch.from_numpy(y[i].astype(np.int64)) for i in (train, val, test)]
    return ImageData(name, description, xt, ys[0], xv, ys[1], xs, ys[2], classes, mean, std)


def load_digits_data(seed: int = 0) -> ImageData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    train, val, test = _split(len(y), y, seed, (0.2, 0.2))
    return _finish("digits", f"scikit-learn load_digits (1797 8x8 grey handwritten digits), stratified 60/20/20 "
                             f"split with seed {seed}", x, y, train, val, test, [str(i) for i in range(10)])


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            d = pickle.load(fh, encoding="bytes")
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    except Exception as exc:  # a corrupt or foreign pickle
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a CIFAR-10 python batch (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or ("labels" not in d and "fine_labels" not in d):
        raise ValueError(f"{path}: CIFAR-10 batch needs 'data' and 'labels' entries; it has {sorted(d)}")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: 'data' must be N x 3072 uint8 with N labels; got {data.shape} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def load_cifar10(path: str | Path, seed: int = 0) -> ImageData:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"cifar10:{path}: no such folder")
    train_files = sorted(p for p in root.glob("data_batch_*") if p.is_file())
    if not train_files:
        raise ValueError(f"cifar10:{path}: no data_batch_1..5 files in the folder")
    if not (root / "test_batch").is_file():
        raise ValueError(f"cifar10:{path}: test_batch is missing")
    xs, ys = zip(*(_cifar_batch(p) for p in train_files))
    x_tr, y_tr = np.concatenate(xs), np.concatenate(ys)
    x_te, y_te = _cifar_batch(root / "test_batch")
    classes = [str(i) for i in range(int(max(y_tr.max(), y_te.max())) + 1)]
    if (root / "batches.meta").is_file():
        meta = _unpickle(root / "batches.meta")
        names = meta.get("label_names")
        if names and len(names) >= len(classes):
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    train, val = _split(len(y_tr), y_tr, seed, (0.2,))
    x = np.concatenate([x_tr, x_te])
    y = np.concatenate([y_tr, y_te])
    test = np.arange(len(y_tr), len(y))
    return _finish("cifar10", f"CIFAR-10 python batches from {root} ({len(train_files)} training batches; "
                              f"validation = 20 % of them with seed {seed}; test = test_batch)",
                   x, y, train, val, test, classes)


def load_image_folder(path: str | Path, seed: int = 0, image_size: int = 32) -> ImageData:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise ValueError("folder: data needs Pillow (pip install pillow)") from None
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"folder:{path}: no such folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise ValueError(f"folder:{path}: needs at least two class sub-folders; found {len(class_dirs)}")
    images, labels = [], []
    for c, d in enumerate(class_dirs):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 3:
            raise ValueError(f"folder:{d}: class needs at least 3 images (png/jpeg/bmp); found {len(files)}")
        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()
                    images.append(im.copy())
            except Exception as exc:
                raise ValueError(f"{f}: not a readable image ({exc})") from None
            labels.append(c)
    grey = all(im.mode in ("1", "L", "I;16", "I") for im in images)
    mode, ch = ("L", 1) if grey else ("RGB", 3)
    arr = np.stack([np.asarray(im.convert(mode).resize((image_size, image_size), Image.BILINEAR), dtype=np.float32)
                    .reshape(image_size, image_size, ch) for im in images]).transpose(0, 3, 1, 2) / 255.0
    y = np.asarray(labels, dtype=np.int64)
    train, val, test = _split(len(y), y, seed, (0.2, 0.2))
    if min(len(train), len(val), len(test)) == 0:
        raise ValueError(f"folder:{path}: too few images for a train/val/test split")
    return _finish("folder", f"image folder {root} ({len(y)} images, {len(class_dirs)} classes, {mode} "
                             f"{image_size}x{image_size}), stratified 60/20/20 split with seed {seed}",
                   arr, y, train, val, test, [d.name for d in class_dirs])


def load_data(spec: str, seed: int = 0) -> ImageData:
    """``digits`` | ``cifar10:PATH`` | ``folder:PATH``."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        return load_digits_data(seed)
    if kind == "cifar10" and path:
        return load_cifar10(path, seed)
    if kind == "folder" and path:
        return load_image_folder(path, seed)
    raise ValueError(f"--data {spec!r} is not understood; use digits, cifar10:PATH or folder:PATH")
