import copy

import pytest
import torch

from adascale_rl.elastic.extract import count_macs, extract_branch, fuse_bn, supernet_pass_macs
from adascale_rl.elastic.network import FINAL, ArchConfig, Branch, ElasticNet, make_divisible
from adascale_rl.elastic.train import TrainConfig, calibrate_bn, train_joint


def test_make_divisible_never_rounds_down_much():
    for c in (4, 6, 12, 16, 24, 96, 320, 1280):
        for w in (0.25, 0.5, 0.75, 1.0):
            v = make_divisible(c * w)
            assert v % 4 == 0 and v >= 0.9 * c * w and v >= 4


def test_default_arch_has_enough_branches():
    arch = ArchConfig()
    assert len(arch.widths) >= 3 and len([e for e in arch.exit_names if e != FINAL]) >= 3
    assert len(arch.branches()) == len(arch.widths) * len(arch.exit_names) * len(arch.resolutions)


def test_supernet_returns_every_exit_and_stops_early(tiny_arch):
    net = ElasticNet(tiny_arch).eval()
    x = torch.randn(3, 1, 8, 8)
    out = net(x, 1.0, 16)
    assert list(out) == list(tiny_arch.exit_names)
    assert all(o.shape == (3, 10) for o in out.values())
    assert list(net(x, 0.5, 8, last_exit="e2")) == ["e1", "e2"]
    with pytest.raises(ValueError):
        net.set_width(0.3)


@pytest.mark.parametrize("branch", [Branch(1.0, FINAL, 16), Branch(0.5, "e1", 8), Branch(0.5, "e3", 16)])
def test_extracted_branch_equals_supernet_branch(trained_tiny, branch):
    net, _ = trained_tiny
    x = torch.randn(5, 1, 8, 8)
    static = extract_branch(net, branch)
    with torch.no_grad():
        ref = net(x, branch.width, branch.resolution, last_exit=branch.exit)[branch.exit]
        assert torch.allclose(static(x), ref, atol=1e-5)
        assert torch.allclose(fuse_bn(static)(x), ref, atol=1e-4)
    assert sum(p.numel() for p in static.parameters()) < sum(p.numel() for p in net.parameters())


def test_branches_span_a_compute_range():
    arch = ArchConfig(resolutions=(8, 16, 24))
    net = ElasticNet(arch).eval()
    x = torch.randn(1, 1, 8, 8)
    big = count_macs(extract_branch(net, Branch(1.0, FINAL, 24)), x)
    small = count_macs(extract_branch(net, Branch(0.25, "e1", 8)), x)
    assert big > 100 * small
    assert supernet_pass_macs(net, 1.0, 24, x) > big  # a pass also evaluates the early exits


def test_joint_training_updates_shared_weights_for_every_branch(small_digits, tiny_arch):
    torch.manual_seed(0)
    net = ElasticNet(tiny_arch)
    before = copy.deepcopy(net.state_dict())
    data = small_digits.subset(64, 16)
    log = train_joint(net, data, TrainConfig(epochs=1, batch_size=32, n_random=2, seed=0), progress=False)
    after = net.state_dict()
    assert log.steps == 2 and log.macs > 0
    # every width's private BN affine parameters moved (each width was trained) ...
    for key in before:
        if ".bns." in key and key.endswith(".weight"):
            assert not torch.equal(before[key], after[key]), key
    # ... every exit head moved, and the stem's smallest slice (shared by all widths) moved
    for name in tiny_arch.exit_names:
        assert not torch.equal(before[f"exits.{name}.fc.weight"], after[f"exits.{name}.fc.weight"])
    smallest = tiny_arch.channels(tiny_arch.stem_channels, tiny_arch.widths)[0]
    assert not torch.equal(before["stem.0.weight"][:smallest], after["stem.0.weight"][:smallest])


def test_bn_calibration_is_exact_average(trained_tiny, small_digits):
    net, _ = trained_tiny
    static = extract_branch(net, Branch(0.5, "e2", 8))
    macs = calibrate_bn(static, small_digits.x_train)
    assert macs > 0 and not static.training
    bn = static.stem[1]
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) > 0


def test_trained_tiny_learns(trained_tiny, small_digits):
    from adascale_rl.elastic.train import supernet_accuracy

    net, log = trained_tiny
    assert supernet_accuracy(net, 1.0, FINAL, 16, small_digits.x_val, small_digits.y_val) > 0.5
