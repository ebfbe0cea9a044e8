"""An environment spec of one's own: files named relative to the spec, ``register_spec`` for
``gymnasium.make``, ``--env PATH`` from another folder; ``envs list`` says how."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import adascale_rl  # noqa: F401  (registers the shipped ids)
from adascale_rl import paths
from adascale_rl.environment import register_spec
from adascale_rl.environment.registration import list_command
from adascale_rl.environment import spec
from adascale_rl.environment.spec import SpecError, find_spec, load_spec
from adascale_rl.evaluation.bench import DEFAULT_ENV
from _envdata import write_env

VERSION = DEFAULT_ENV.rsplit("-", 1)[-1]


def _own_spec(tmp: Path, name: str = "Mine-Test") -> Path:
    """A folder laid out as `adascale-rl profile` writes one: the spec names its files relatively."""
    folder = tmp / "mine"
    (folder / "devices").mkdir(parents=True)
    (folder / "catalogs").mkdir()
    shutil.copy(paths.envs_dir() / "devices" / "rpi4.yaml", folder / "devices" / "rpi4.yaml")
    fixture = write_env(folder)
    shutil.move(fixture.catalog, folder / "catalogs" / "fixture.json")
    doc = {"id": f"AdaScale/{name}-{VERSION}", "description": "mine", "device": "devices/rpi4.yaml",
           "catalog": "catalogs/fixture.json", "dataset": "fixture-v1", "reward": "balanced", "period_s": 1.0,
           "max_episode_steps": 30}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_relative_files_are_found_beside_the_spec_from_any_folder(tmp_path, monkeypatch):
    path = _own_spec(tmp_path)
    monkeypatch.chdir(tmp_path)  # neither devices/ nor catalogs/ is here
    spec = load_spec(path)
    assert spec.device == str(path.parent / "devices" / "rpi4.yaml")
    assert spec.catalog_path() == path.parent / "catalogs" / "fixture.json"
    assert load_spec(paths.envs_dir() / "Rpi4-Vision.yaml").device == "rpi4"  # a shipped name stays a name


def test_register_spec_makes_a_users_file_a_gym_id(tmp_path, monkeypatch):
    path = _own_spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    env_id = register_spec(path.relative_to(tmp_path))
    assert env_id == f"AdaScale/Mine-Test-{VERSION}"
    try:
        env = gym.make(env_id)
        obs, info = env.reset(seed=0)
        for _ in range(30):
            obs, reward, terminated, truncated, info = env.step(0)
            assert np.isfinite(reward)
            if truncated:
                break
        assert truncated  # the spec's window, 30 intervals, through gymnasium's TimeLimit too
        env.close()
        assert register_spec(path) == env_id  # the same file again: the same id
        # another file declaring a registered id (a copy elsewhere; a shipped environment's name) is refused,
        # not silently answered with the other environment
        (tmp_path / "copy").mkdir()
        other = tmp_path / "copy" / path.name
        other.write_text(path.read_text())
        with pytest.raises(SpecError, match=f"id AdaScale/Mine-Test-{VERSION} is already registered"):
            register_spec(other)
        shadow = path.with_name("Rpi4-Vision.yaml")
        shadow.write_text(path.read_text().replace("Mine-Test", "Rpi4-Vision"))
        with pytest.raises(SpecError, match="give this spec another id"):
            register_spec(shadow)
    finally:
        gym.registry.pop(env_id, None)


def test_cli_takes_a_users_spec_path_from_another_folder(tmp_path):
    path = _own_spec(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "evaluate", "--env", str(path), "--policy",
                          "static-smallest", "--seeds", "1"], cwd=elsewhere, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"AdaScale/Mine-Test-{VERSION} split=test" in res.stdout


def test_envs_list_says_how_to_use_an_environment_of_ones_own(capsys):
    assert list_command(None) == 0
    out = capsys.readouterr().out
    assert find_spec("Rpi4-Vision").id in out
    assert "--env path/to/Name.yaml" in out and "register_spec(path)" in out


def _data_root_with_a_broken_spec(tmp: Path) -> Path:
    """A copy of the shipped data root's envs/ (traces and agents linked) with one spec that is not YAML."""
    root = tmp / "data"
    shutil.copytree(paths.envs_dir(), root / "envs")
    (root / "traces").symlink_to(paths.traces_dir())
    (root / "agents").mkdir()
    (root / "envs" / "Broken-Thing.yaml").write_text("id: [unclosed\n")
    return root


def test_a_broken_spec_breaks_only_its_own_environment(tmp_path):
    root = _data_root_with_a_broken_spec(tmp_path)
    env = {**__import__("os").environ, "ADASCALE_RL_DATA": str(root)}
    run = lambda *args: subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)  # noqa: E731
    assert run("-m", "adascale_rl.cli", "--help").returncode == 0
    listed = run("-m", "adascale_rl.cli", "envs", "list")
    assert listed.returncode == 1 and "AdaScale/Rpi4-Vision-v4" in listed.stdout
    assert "Broken-Thing.yaml" in listed.stderr and "not valid YAML" in listed.stderr
    code = ("import gymnasium as gym, adascale_rl\n"
            "gym.make('AdaScale/Rpi4-Vision-v4').reset(seed=0)\n"
            "try:\n    gym.make('AdaScale/Broken-Thing-v4')\nexcept Exception as exc:\n    print('refused:', exc)\n")
    res = run("-c", code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "refused:" in res.stdout and "Broken-Thing.yaml" in res.stdout


def test_importing_the_package_imports_neither_gymnasium_nor_torch_until_asked():
    code = ("import sys, adascale_rl\n"
            "assert 'gymnasium' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
            "import gymnasium as gym\n"
            "assert 'AdaScale/Rpi4-Vision-v4' in gym.registry  # registered as Gymnasium is imported\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_an_id_of_the_previous_version_is_refused_with_the_one_that_exists():
    with pytest.raises(SpecError, match="AdaScale/Rpi4-Vision-v4"):
        find_spec("AdaScale/Rpi4-Vision-v1")


def test_an_id_names_its_environment_and_its_dynamics_version():
    assert spec.env_name("AdaScale/Rpi4-Vision-v3") == "Rpi4-Vision"
    assert spec.env_version("AdaScale/Rpi4-Vision-v3") == 3
    assert spec.env_version(spec.id_for("Rpi4-Vision")) == spec.VERSION
    assert spec.env_version("AdaScale/Rpi4-Vision") is None and spec.env_version("AdaScale/My-vision-vx") is None


def test_a_spec_file_that_does_not_exist_is_named_as_a_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"no such environment file: .*nonexist\.yaml \(a spec YAML, or a registered"):
        find_spec(str(tmp_path / "nonexist.yaml"))
    with pytest.raises(SpecError, match=r"no such environment file: Rpi4-Vision\.yaml \(the registered "
                                        r"AdaScale/Rpi4-Vision-v\d+ is --env Rpi4-Vision\)"):
        find_spec("Rpi4-Vision.yaml")
