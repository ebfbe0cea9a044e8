"""End to end: `adascale-rl profile --quick` through a subprocess in a clean clone, the environment it
writes in bench, evaluate, train and gymnasium.make, and the shipped local-x86 files."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from adascale_rl import paths
from adascale_rl.device.catalog import load_catalog
from adascale_rl.device.presets import load_preset_file
from adascale_rl.elastic.profile import _arch_name
from adascale_rl.environment.spec import load_spec
from adascale_rl.evaluation.bench import DEFAULT_ENV

ENV_KEYS = ["id", "description", "device", "catalog", "dataset", "workload", "reward", "period_s", "max_episode_steps"]


def _check_env_spec(path: Path, name: str) -> None:
    spec = yaml.safe_load(path.read_text())
    assert list(spec) == ENV_KEYS
    assert spec["id"] == "AdaScale/Local-Digits-v4"
    assert spec["device"] == spec["catalog"] == name
    assert spec["dataset"] == "host-recorded-v2" and spec["reward"] == "balanced"
    assert spec["workload"] == "local-digits"  # the digits data: the digit reader's modes over the recordings
    assert spec["period_s"] == 1.0 and spec["max_episode_steps"] == 300


def _check_user_env_spec(path: Path, name: str) -> None:
    """The spec profile writes for the user: its own id, its files by paths relative to itself."""
    spec = yaml.safe_load(path.read_text())
    assert list(spec) == ENV_KEYS
    assert spec["id"] == f"AdaScale/MyHost-Digits-{DEFAULT_ENV.rsplit('-', 1)[-1]}"  # not the shipped Local-Digits
    assert spec["device"] == f"devices/{name}.yaml" and spec["catalog"] == f"catalogs/{name}.json"
    assert spec["dataset"] == "host-recorded-v2" and spec["reward"] == "balanced"
    assert spec["workload"] == "local-digits"  # the digits data: the digit reader's modes over the recordings
    assert spec["period_s"] == 1.0 and spec["max_episode_steps"] == 300


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_profile_quick_writes_outside_the_shipped_data_and_says_how_to_use_it(profiled):
    # the clone's tracked files (envs/ among them) are untouched, and its output folder is ignored by git
    status = subprocess.run(["git", "status", "--porcelain"], cwd=profiled.clone, capture_output=True, text=True)
    assert status.stdout == ""
    name = f"local-{_arch_name()}"
    out = profiled.out / "catalogs" / f"{name}.json"
    cat = load_catalog(out)                      # validates against the shared format
    assert len(cat) == 6 and cat.machine["threads_used"] == 2
    assert 1 <= cat.machine["usable_cpus"] <= cat.machine["logical_cores"]  # the CPUs it timed on, of the machine's
    assert "background_cpu_util" in cat.machine
    for v in cat.variants:
        assert v.provenance["latency_ms"]["kind"] == "measured"
        assert v.provenance["energy_mj"]["kind"] in ("measured", "derived")
        assert v.branch["latency_p95_ms"] >= v.latency_ms
    preset = load_preset_file(profiled.out / "devices" / f"{name}.yaml")
    assert preset.cores >= 1 and preset.battery_wh is None
    spec_file = profiled.out / "MyHost-Digits.yaml"
    _check_user_env_spec(spec_file, name)
    env_id = load_spec(spec_file).id
    # its last lines say how to use it: the spec file as --env in bench, evaluate and train, and from Python
    last = profiled.stdout.strip().splitlines()[-9:]
    assert last[3].startswith("note: --quick trains the network for seconds") and "not an environment" in last[3]
    last = last[:3] + last[4:]
    assert last[:3] == [f"wrote adascale-profile/catalogs/{name}.json (6 variants)",
                        f"wrote adascale-profile/devices/{name}.yaml",
                        f"wrote adascale-profile/MyHost-Digits.yaml (environment {env_id})"]
    assert last[4:] == ["  adascale-rl bench --env adascale-profile/MyHost-Digits.yaml",
                        "  adascale-rl evaluate --env adascale-profile/MyHost-Digits.yaml --policy planner",
                        "  adascale-rl train --env adascale-profile/MyHost-Digits.yaml",
                        "  python: import gymnasium as gym; from adascale_rl.environment import register_spec; "
                        "env = gym.make(register_spec('adascale-profile/MyHost-Digits.yaml'))"]
    # a second run would reuse the cached supernet instead of training again
    from adascale_rl.elastic.data import load_data
    from adascale_rl.elastic.variants import quick_recipe, trained_supernet, variant_files

    recipe = quick_recipe(0)
    data = load_data("digits", 0).subset(*recipe.subset)
    said = []
    old = os.environ.get("ADASCALE_RL_CACHE")
    os.environ["ADASCALE_RL_CACHE"] = str(profiled.cache)
    try:
        trained_supernet(recipe.arch_for(data), data, recipe.train, progress=False, log=said.append)
        files = variant_files(out)  # ... and the runtime finds every deployable variant of the written catalog
    finally:
        if old is None:
            del os.environ["ADASCALE_RL_CACHE"]
        else:
            os.environ["ADASCALE_RL_CACHE"] = old
    assert said and said[0].startswith("loaded the trained elastic model")
    assert set(files) == set(cat.ids) and all(f.exists() for f in files.values())
    import torch

    logits = torch.jit.load(str(files[cat.ids[0]]))(data.x_test[:2])
    assert logits.shape == (2, 10)


@pytest.mark.slow
def test_the_profiled_environment_works_in_bench_evaluate_train_and_gym_make(profiled):
    spec_file = profiled.out / "MyHost-Digits.yaml"
    elsewhere = profiled.tmp / "elsewhere"  # another folder: the spec's relative paths must still resolve
    elsewhere.mkdir()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "adascale_rl.cli", *args], cwd=elsewhere, capture_output=True,
                              text=True, timeout=300)

    b = cli("bench", "--env", str(spec_file), "--quick", "--seeds", "1", "--policies",
            "static-largest,planner,oracle", "--out", "b", "--no-progress")
    assert b.returncode == 0, b.stderr[-2000:]
    assert "### AdaScale/MyHost-Digits-v" in (elsewhere / "b" / "results.md").read_text()
    ev = cli("evaluate", "--env", str(spec_file), "--policy", "greedy", "--seeds", "1")
    assert ev.returncode == 0 and "AdaScale/MyHost-Digits-v" in ev.stdout, ev.stderr[-2000:]
    (elsewhere / "tiny.yml").write_text(yaml.safe_dump({"default": {
        "policy": "MlpPolicy", "n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1,
        "policy_kwargs": {"net_arch": [8]}}}))
    tr = cli("train", "--env", str(spec_file), "-n", "64", "--hyperparams", "tiny.yml", "--out", "run",
             "--no-progress")
    assert tr.returncode == 0, tr.stderr[-2000:]
    assert (elsewhere / "run" / "best_model.zip").is_file()
    import gymnasium as gym

    from adascale_rl.environment import register_spec

    ids = load_catalog(profiled.out / "catalogs" / f"local-{_arch_name()}.json").ids
    env = gym.make(register_spec(spec_file))
    obs, info = env.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(0)
        assert np.isfinite(reward) and info["variant"] in ids
    env.close()


@pytest.mark.parametrize("out, words", [
    ("{envs}", "is inside the shipped data"),
    ("{envs}/catalogs", "is inside the shipped data"),
    ("{traces}/mine", "is inside the shipped data"),
    ("cat.json", "profile writes a folder (catalogs/, devices/ and an environment spec)"),
])
def test_profile_refuses_to_write_into_the_shipped_data_before_any_work(tmp_path, out, words):
    out = out.format(envs=paths.envs_dir(), traces=paths.traces_dir())
    before = sorted(p.name for p in paths.envs_dir().rglob("*"))
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "profile", "--quick", "--out", out, "--no-progress"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "ADASCALE_RL_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert not (tmp_path / "cache").exists() and sorted(p.name for p in paths.envs_dir().rglob("*")) == before


def test_profile_bad_data_is_a_one_line_user_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "profile", "--quick", "--data",
                        "cifar10:/nonexistent", "--out", str(tmp_path / "p"), "--no-progress"], capture_output=True,
                       text=True, env={**os.environ, "ADASCALE_RL_CACHE": str(tmp_path / "cache")}, timeout=120)
    assert r.returncode == 2
    assert "no such folder" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p").exists()


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

    if "AdaScale/Local-Digits-v4" not in gym.registry:
        pytest.skip("Local-Digits not generated yet")
    try:
        env = gym.make("AdaScale/Local-Digits-v4")
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
