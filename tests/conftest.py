"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

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


# --------------------------------------------------------------------------- a quick profile, shared

def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _clean_clone(tmp: Path) -> Path:
    """The repository's tracked files, as they are in this checkout, committed in a fresh repository."""
    root = Path(__file__).resolve().parents[1]
    ls = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True) if shutil.which("git") else None
    if ls is None or ls.returncode != 0 or not ls.stdout:
        pytest.skip("not a git checkout (or no git): no clean clone to profile in")
    clone = tmp / "clone"
    for rel in filter(None, ls.stdout.decode().split("\0")):
        if (root / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, clone / rel)
    assert _git("init", "-q", cwd=clone).returncode == 0
    _git("add", "-A", cwd=clone)
    assert _git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "clone",
                cwd=clone).returncode == 0
    assert _git("status", "--porcelain", cwd=clone).stdout == ""
    return clone


@pytest.fixture(scope="session")
def profiled(tmp_path_factory):
    """`adascale-rl profile --quick`, as the README shows it, in a clean clone (about a minute)."""
    tmp = tmp_path_factory.mktemp("profile")
    clone = _clean_clone(tmp)
    env = {**os.environ, "ADASCALE_RL_CACHE": str(tmp / "cache"), "PYTHONPATH": str(clone)}
    env.pop("ADASCALE_RL_DATA", None)
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "profile", "--quick", "--no-progress",
                        "--threads", "2"], cwd=clone, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return SimpleNamespace(clone=clone, cache=tmp / "cache", stdout=r.stdout, out=clone / "adascale-profile",
                           tmp=tmp)
