"""End to end: `adascale-rl profile --quick` through a subprocess, and the shipped local-x86 files."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adascale_rl import paths
from adascale_rl.device.catalog import load_catalog
from adascale_rl.device.presets import load_preset_file

ENV_KEYS = ["id", "description", "device", "catalog", "dataset", "workload", "reward", "period_s", "max_episode_steps"]


def _check_env_spec(path: Path, name: str) -> None:
    spec = yaml.safe_load(path.read_text())
    assert list(spec) == ENV_KEYS
    assert spec["id"] == "AdaScale/Local-Digits-v1"
    assert spec["device"] == spec["catalog"] == name
    assert spec["dataset"] == "host-recorded-v1" and spec["reward"] == "balanced"
    assert spec["workload"] == "local-digits"  # the digits data: the digit reader's modes over the recordings
    assert spec["period_s"] == 1.0 and spec["max_episode_steps"] == 300


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_profile_quick_end_to_end(tmp_path):
    out = tmp_path / "envs" / "catalogs" / "cat.json"
    env = {**os.environ, "ADASCALE_RL_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "adascale_rl.cli", "profile", "--quick", "--out", str(out), "--no-progress",
           "--threads", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    cat = load_catalog(out)                      # validates against the shared format
    assert len(cat) == 6 and cat.machine["threads_used"] == 2
    assert "background_cpu_util" in cat.machine
    for v in cat.variants:
        assert v.provenance["latency_ms"]["kind"] == "measured"
        assert v.provenance["energy_mj"]["kind"] in ("measured", "derived")
        assert v.branch["latency_p95_ms"] >= v.latency_ms
    preset = load_preset_file(tmp_path / "envs" / "devices" / "cat.yaml")
    assert preset.cores >= 1 and preset.battery_wh is None
    _check_env_spec(tmp_path / "envs" / "Local-Digits.yaml", "cat")
    assert "wrote" in r.stdout
    # a second run would reuse the cached supernet instead of training again
    from adascale_rl.elastic.data import load_data
    from adascale_rl.elastic.variants import quick_recipe, trained_supernet

    recipe = quick_recipe(0)
    data = load_data("digits", 0).subset(*recipe.subset)
    said = []
    old = os.environ.get("ADASCALE_RL_CACHE")
    os.environ["ADASCALE_RL_CACHE"] = env["ADASCALE_RL_CACHE"]
    try:
        trained_supernet(recipe.arch_for(data), data, recipe.train, progress=False, log=said.append)
    finally:
        if old is None:
            del os.environ["ADASCALE_RL_CACHE"]
        else:
            os.environ["ADASCALE_RL_CACHE"] = old
    assert said and said[0].startswith("loaded the trained elastic model")
    # ... and the runtime finds every deployable variant of the written catalog
    from adascale_rl.elastic.variants import variant_files

    os.environ["ADASCALE_RL_CACHE"] = env["ADASCALE_RL_CACHE"]
    try:
        files = variant_files(out)
    finally:
        if old is None:
            del os.environ["ADASCALE_RL_CACHE"]
        else:
            os.environ["ADASCALE_RL_CACHE"] = old
    assert set(files) == set(cat.ids) and all(f.exists() for f in files.values())
    import torch

    logits = torch.jit.load(str(files[cat.ids[0]]))(data.x_test[:2])
    assert logits.shape == (2, 10)


def test_profile_bad_data_is_a_one_line_user_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "profile", "--quick", "--data", "cifar10:/nonexistent",
                        "--out", str(tmp_path / "c.json"), "--no-progress"], capture_output=True, text=True,
                       env={**os.environ, "ADASCALE_RL_CACHE": str(tmp_path / "cache")}, timeout=120)
    assert r.returncode == 2
    assert "no such folder" in r.stderr and "Traceback" not in r.stderr


def test_shipped_local_x86_files_are_valid():
    envs = paths.envs_dir()
    cat_path = envs / "catalogs" / "local-x86.json"
    if not cat_path.exists():
        pytest.skip("local-x86 catalog not generated yet")
    cat = load_catalog(cat_path)
    assert len(cat) >= 16
    assert cat.machine["logical_cores"] >= 1 and "background_cpu_util" in cat.machine
    assert all(v.provenance["accuracy"]["kind"] == "measured" for v in cat.variants)
    load_preset_file(envs / "devices" / "local-x86.yaml")
    _check_env_spec(envs / "Local-Digits.yaml", "local-x86")


def test_shipped_local_digits_environment_runs():
    """The generated device + catalog drive the simulator like the published ones do."""
    import gymnasium as gym
    import numpy as np

    import adascale_rl  # noqa: F401  (registers the environments)

    if "AdaScale/Local-Digits-v1" not in gym.registry:
        pytest.skip("Local-Digits not generated yet")
    try:
        env = gym.make("AdaScale/Local-Digits-v1")
    except FileNotFoundError as exc:  # the host-recorded trace dataset is produced elsewhere
        pytest.skip(f"dataset missing: {exc}")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for i in range(20):
        obs, reward, terminated, truncated, info = env.step(int(i % env.action_space.n))
        assert np.isfinite(reward)
        if terminated or truncated:
            break
    env.close()
