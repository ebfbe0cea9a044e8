import pytest
import torch

from adascale_rl.elastic.extract import count_macs, count_params, extract_branch, fuse_bn
from adascale_rl.elastic.network import FINAL, Branch
from adascale_rl.elastic.operators import low_rank, prune_channels, quantize_int8
from adascale_rl.elastic.train import accuracy, calibrate_bn, finetune

BRANCH = Branch(1.0, FINAL, 16)


@pytest.fixture(scope="module")
def branch_model(trained_tiny, small_digits):
    net, _ = trained_tiny
    model = extract_branch(net, BRANCH)
    calibrate_bn(model, small_digits.x_train)  # as the pipeline does for every branch
    return model


def test_prune_removes_channels_and_still_runs(branch_model, small_digits):
    x = small_digits.x_val[:1]
    pruned = prune_channels(branch_model, x, ratio=0.5)
    assert count_macs(pruned, x) < 0.5 * count_macs(branch_model, x)
    assert count_params(pruned) < 0.6 * count_params(branch_model)
    out = pruned(small_digits.x_val[:7])
    assert out.shape == (7, 10) and torch.isfinite(out).all()
    # the original is untouched (the operator works on a copy)
    assert count_macs(branch_model, x) > count_macs(pruned, x)


def test_prune_then_finetune_recovers(branch_model, small_digits):
    x = small_digits.x_val[:1]
    pruned = prune_channels(branch_model, x, ratio=0.5)
    before = accuracy(pruned, small_digits.x_val, small_digits.y_val)
    log = finetune(pruned, branch_model, small_digits, epochs=2, seed=0)
    assert log.steps > 0 and log.macs > 0
    assert accuracy(pruned, small_digits.x_val, small_digits.y_val) >= before - 0.05


def test_low_rank_factorises_and_approximates(branch_model, small_digits):
    x = small_digits.x_val[:1]
    lr = low_rank(branch_model, keep=0.5, min_macs_per_pixel=256)
    assert count_macs(lr, x) < count_macs(branch_model, x)
    assert count_params(lr) < count_params(branch_model)
    n_seq = sum(1 for m in lr.modules() if isinstance(m, torch.nn.Sequential) and len(m) == 2
                and all(isinstance(c, torch.nn.Conv2d) for c in m))
    assert n_seq > 0
    # full rank reproduces the layer exactly: the factorisation itself is right
    exact = low_rank(branch_model, keep=1e9, min_macs_per_pixel=256)
    with torch.no_grad():
        assert torch.allclose(exact(small_digits.x_val[:4]), branch_model(small_digits.x_val[:4]), atol=1e-4)


def test_int8_stays_close_to_float(branch_model, small_digits):
    q = quantize_int8(branch_model, small_digits.x_train[:128])
    ref = fuse_bn(branch_model)
    x = small_digits.x_val
    with torch.no_grad():
        a, b = ref(x), q(x)
    agree = (a.argmax(1) == b.argmax(1)).float().mean().item()
    corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
    assert agree >= 0.9 and corr >= 0.98
    packed = [m for m in q.modules() if "quantized" in type(m).__module__]
    assert packed, "no quantized modules in the converted model"


def test_operators_compose_prune_then_int8(branch_model, small_digits):
    x = small_digits.x_val[:1]
    q = quantize_int8(prune_channels(branch_model, x), small_digits.x_train[:64])
    assert q(small_digits.x_val[:3]).shape == (3, 10)
