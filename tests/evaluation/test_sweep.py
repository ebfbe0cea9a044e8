"""``adascale-rl sweep``: the sweep file, the results, and a two-trial study through Ray.

The Ray tests need the ``distributed`` extra. Without Ray they skip, unless
``ADASCALE_RL_REQUIRE_RAY=1`` (CI sets it, having installed the extra): then they fail.
"""

from __future__ import annotations

import builtins
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adascale_rl import cli
from adascale_rl.evaluation import sweep as sw
from _envdata import write_env

TINY_RECIPE = {"policy": "MlpPolicy", "n_envs": 2, "vectorized": True, "n_timesteps": 128,
               "normalize": {"norm_obs": False, "norm_reward": True}, "n_steps": 32, "batch_size": 32, "n_epochs": 1,
               "learning_rate": 3.0e-4, "policy_kwargs": {"net_arch": [8]}}


def _study(tmp_path: Path, **over) -> Path:
    """A sweep file over a fixture environment (short windows) and a tiny recipe."""
    (tmp_path / "env").mkdir(exist_ok=True)
    spec = write_env(tmp_path / "env", steps=20)
    doc = {k: getattr(spec, k) for k in ("id", "description", "device", "catalog", "dataset", "reward", "period_s",
                                         "max_episode_steps")}
    env_file = tmp_path / "Fixture-Test.yaml"
    env_file.write_text(yaml.safe_dump(doc))
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(yaml.safe_dump({"default": TINY_RECIPE}))
    study = {"name": "two", "envs": [str(env_file)], "seeds": [0], "recipe": str(recipe), "timesteps": 64,
             "search": {"algorithm": "grid", "space": {"learning_rate": {"grid": [1.0e-4, 1.0e-3]}}},
             "evaluate": {"seeds": 1, "windows": 2}, **over}
    path = tmp_path / "two.yml"
    path.write_text(yaml.safe_dump(study))
    return path


def _ray_or_skip():
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        if os.environ.get("ADASCALE_RL_REQUIRE_RAY") == "1":
            pytest.fail("ADASCALE_RL_REQUIRE_RAY=1 but Ray Tune cannot be imported: install '.[distributed]'")
        pytest.skip("Ray Tune is not installed (the distributed extra)")


# ------------------------------------------------------------------ the sweep file

def test_the_example_sweep_file_is_valid():
    s = sw.load_sweep(Path(__file__).resolve().parents[2] / "agents" / "sweeps" / "example.yml")
    assert s.name == "example" and len(s.cells) == 2 and s.seeds == [0, 1, 2] and s.algorithm == "grid"


@pytest.mark.parametrize("over, words", [
    ({"bogus": 1}, "unknown key(s) bogus"),
    ({"envs": ["AdaScale/Nowhere-v4"]}, "envs: 'AdaScale/Nowhere-v4' is not an environment"),
    ({"rewards": ["frugal"]}, "rewards: 'frugal' is not a reward preset"),
    ({"datasets": ["no/such/folder"]}, "datasets: 'no/such/folder' is neither a folder nor a shipped dataset"),
    ({"seeds": [0, 0]}, "seeds must be distinct whole numbers"),
    ({"recipe": "missing.yml"}, "recipe 'missing.yml' does not exist"),
    ({"timesteps": 0}, "timesteps must be a whole number >= 1"),
    ({"timesteps": float("inf")}, "timesteps must be a whole number >= 1"),
    ({"rewards": [["balanced"]]}, "rewards: ['balanced'] is not a reward preset"),
    ({"recipe": 5}, "recipe must be a path to a recipe file, not 5"),
    ({"search": {"algorithm": "bayes"}}, "search.algorithm must be one of grid, optuna"),
    ({"search": {"algorithm": "optuna", "space": {"learning_rate": {"grid": [1, 2]}}}},
     "optuna searches distributions, not grids"),
    ({"search": {"space": {"learning_rate": {"uniform": [0.1, 0.01]}}}}, "must be [low, high] with low < high"),
    ({"search": {"space": {"learning_rte": {"grid": [0.1]}}}}, "unknown hyperparameter(s) learning_rte"),
    ({"search": {"space": {"n_steps": {"grid": [0]}}}}, "n_steps must be a positive integer"),
    ({"evaluate": {"seeds": 0}}, "evaluate.seeds must be a whole number >= 1"),
    ({"max_concurrent": 0}, "max_concurrent must be a whole number >= 1"),
])
def test_sweep_file_mistakes_name_the_file_and_key(tmp_path, over, words):
    path = _study(tmp_path, **over)
    with pytest.raises(sw.SweepError) as exc:
        sw.load_sweep(path)
    assert words in str(exc.value) and str(path) in str(exc.value)


def test_recipe_keys_are_set_over_the_recipe_nested_by_dots():
    entry = {"clip_range": 0.1, "policy_kwargs": {"net_arch": [64], "features_extractor_kwargs": {"temperature": 0.003}}}
    merged = sw.merge(entry, {"clip_range": 0.2, "policy_kwargs.features_extractor_kwargs.temperature": 0.01})
    assert merged == {"clip_range": 0.2, "policy_kwargs": {"net_arch": [64], "features_extractor_kwargs":
                                                           {"temperature": 0.01}}}
    assert entry["clip_range"] == 0.1  # a copy
    assert sw.hp_key({"a": 1, "b": 2}) == sw.hp_key({"b": 2, "a": 1}) != sw.hp_key({"a": 1})


def test_the_summary_has_a_ci_over_training_seeds_and_the_best_first():
    rows = [{"env": "E", "reward": "", "dataset": "", "hyperparams": hp, "seed": s, "status": "done", "val_return": v,
             "effective_accuracy": 0.7, "miss_rate": 0.01, "energy_j": 100.0, "switches": 3.0}
            for hp, s, v in (('{"lr": 1}', 0, 10.0), ('{"lr": 1}', 1, 12.0), ('{"lr": 2}', 0, 13.0),
                             ('{"lr": 2}', 1, 13.0), ('{"lr": 3}', 0, 99.0))]
    rows[-1]["status"] = "error"
    summary = sw.summarise(rows)
    assert [s["hyperparams"] for s in summary] == ['{"lr": 2}', '{"lr": 1}']
    assert summary[1]["val_return"] == 11.0 and summary[1]["ci95"] == pytest.approx(12.706 * 1.0, rel=1e-3)
    assert summary[0]["ci95"] == 0.0 and summary[0]["seeds"] == "0,1"


def test_without_ray_sweep_says_how_to_install_it_in_one_sentence(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    code = cli.main(["sweep", str(_study(tmp_path)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "pip install 'adascale-rl[distributed]'" in err
    code = cli.main(["sweep", str(tmp_path / "nosuch.yml"), "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err.strip()  # the file's mistake first, Ray or not
    assert code == 2 and "nosuch.yml" in err and "pip install" not in err


# ------------------------------------------------------------------ through Ray

@pytest.mark.slow
def test_a_two_trial_sweep_runs_through_ray_and_resumes(tmp_path):
    """The CI sweep: two trials (a grid of two learning rates) with tiny budgets, Ray in-process; then the
    same command again resumes the finished study without training again."""
    _ray_or_skip()
    path = _study(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "adascale_rl.cli", "sweep", str(path), "--out", str(out)]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("validation return") == 2
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"done"}
    assert {r["hyperparams"] for r in rows} == {'{"learning_rate": 0.0001}', '{"learning_rate": 0.001}'}
    for r in rows:
        assert math.isfinite(float(r["val_return"])) and Path(r["run"], "best_model.zip").exists()
        assert float(r["episodes"]) == 2.0
    md = (out / "results.md").read_text()
    assert "## Best configuration per environment" in md and "Fixture-Test" in md
    trained = {r["run"]: Path(r["run"], "model.zip").stat().st_mtime for r in rows}
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming the study" in again.stdout and "validation return" not in again.stdout
    assert list(csv.DictReader((out / "results.csv").open())) == rows
    assert {r: Path(r, "model.zip").stat().st_mtime for r in trained} == trained  # nothing trained again
    # a study folder belongs to its sweep file
    other = _study(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, seeds=[1])
    bad = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "sweep", str(other), "--out", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "holds a study of another sweep file" in bad.stderr
