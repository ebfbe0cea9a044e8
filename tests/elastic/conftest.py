"""Shared fixtures: a tiny supernet trained briefly on a digits subset (seconds, one thread)."""

from __future__ import annotations

import pytest
import torch

from adascale_rl.elastic.data import load_digits_data
from adascale_rl.elastic.variants import quick_recipe


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread: on a shared 2-core machine OpenMP barriers under contention make
    2-thread runs of tiny models many times slower, and no test here measures speed."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="session")
def digits():
    return load_digits_data(seed=0)


@pytest.fixture(scope="session")
def small_digits(digits):
    return digits.subset(400, 200)


@pytest.fixture(scope="session")
def tiny_arch(small_digits):
    return quick_recipe().arch_for(small_digits)


@pytest.fixture(scope="session")
def trained_tiny(small_digits, tiny_arch):
    """A tiny supernet after a few joint epochs (accurate enough for agreement tests)."""
    from adascale_rl.elastic.network import ElasticNet
    from adascale_rl.elastic.train import TrainConfig, train_joint

    torch.manual_seed(0)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = ElasticNet(tiny_arch)
        log = train_joint(net, small_digits, TrainConfig(epochs=10, lr=5e-3, seed=0), progress=False)
    finally:
        torch.set_num_threads(prev)
    return net.eval(), log
