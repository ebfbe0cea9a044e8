"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from _envdata import write_env
from adascale_rl.environment.spec import EnvSpec


@pytest.fixture
def fixture_spec(tmp_path) -> EnvSpec:
    return write_env(tmp_path)
