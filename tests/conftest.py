"""Fixtures shared by every test folder."""

from __future__ import annotations

import os

import pytest

from _envdata import write_env
from adascale_rl.environment.spec import EnvSpec


@pytest.fixture
def fixture_spec(tmp_path) -> EnvSpec:
    return write_env(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_stay_in_pytest_tmp(tmp_path_factory):
    """An SB3 model trained without a TensorBoard folder configures a logger that creates an
    empty ``<temp dir>/SB3-<date-time>`` folder and leaves it there; ``SB3_LOGDIR`` points that
    folder into pytest's own temporary tree instead (subprocesses inherit it)."""
    old = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3-logdir"))
    yield
    if old is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = old
