"""``adascale-rl sweep CONFIG``: a training study on Ray Tune.

A sweep file (``agents/sweeps/example.yml``) declares a study over environments x reward
presets x trace datasets x training seeds x hyperparameters::

    name: example
    envs: [AdaScale/Rpi4-Vision-v4]        # ids, spec names or spec YAML paths
    rewards: [balanced, energy-saver]      # reward presets; null: the environment's own
    datasets: [null]                       # trace datasets; null: the environment's own
    seeds: [0, 1, 2]                       # training seeds (the CIs are over them)
    recipe: agents/hyperparams/ppo.yml     # the base recipe (its entry for each environment)
    timesteps: 20480                       # per trial (default: the recipe's n_timesteps)
    search:
      algorithm: grid                      # grid, or optuna (OptunaSearch through Tune)
      samples: 1                           # grid: draws of the random entries per grid point;
                                           # optuna: configurations per environment x reward x dataset
      space:                               # recipe keys (dotted for nested ones) and their values
        learning_rate: {grid: [1.0e-4, 3.0e-4]}
        clip_range: {uniform: [0.05, 0.2]}
        policy_kwargs.features_extractor_kwargs.temperature: {loguniform: [0.001, 0.01]}
    evaluate: {seeds: 2, windows: 20}      # the validation split: evaluation seeds, windows
    trial: {cpus: 1}                       # Ray resources per trial
    max_concurrent: null                   # trials at once (default: as many as the CPUs allow)

Each trial is one ``adascale-rl train`` run (:func:`adascale_rl.policies.ppo.train`, run folder
``<out>/runs/...``) followed by ``adascale-rl evaluate`` of its best checkpoint on the validation
split (:func:`adascale_rl.policies.rollout.evaluate`); it reports the mean validation return,
which the search maximises. With ``grid`` every combination of the study's dimensions and of the
``grid`` entries is a trial (Tune's ``grid_search``; random entries are drawn by Tune's
``BasicVariantGenerator``). With ``optuna`` there is one Tune experiment per environment x reward
x dataset, with ``OptunaSearch`` behind Tune's ``Repeater``, which plays every suggested
configuration once per training seed and tells Optuna their mean.

Ray runs in-process on this machine by default, or on a running cluster with ``--address``
(then ``--out`` must be storage every node sees). The study is resumable: the same command
with the same ``--out`` restores the Tune experiment (``Tuner.restore``; finished trials are
kept, the others run again, and a trial's training resumes from its last checkpoint). The
results of every trial are gathered into ``<out>/results.csv`` and ``<out>/results.md`` (the
best configuration per environment, reward preset and dataset, with 95 % CIs over the seeds).
Ray is the optional extra ``adascale-rl[distributed]``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from adascale_rl import paths
from adascale_rl._files import command_line, read_data
from adascale_rl.evaluation.core import ci95

MISSING_RAY = ("adascale-rl sweep needs Ray Tune, an optional extra: "
               "pip install 'adascale-rl[distributed]' (or pip install 'ray[tune]')")
ALGORITHMS = ("grid", "optuna")
DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
METRIC = "val_return"
KEYS = ("name", "envs", "rewards", "datasets", "seeds", "recipe", "timesteps", "search", "evaluate", "trial",
        "max_concurrent")
#: what a trial reports and results.csv holds, after the study's dimensions
REPORTED = ("val_return", "val_ci95", "effective_accuracy", "miss_rate", "mean_latency_ms", "energy_j", "switches",
            "oom_kills", "episodes", "train_best_val_return", "train_best_at", "train_wall_time_s", "trial_wall_time_s")


class SweepError(ValueError):
    """A sweep file that cannot be used; the message names the file and the key."""


@dataclass
class Sweep:
    path: Path
    name: str
    envs: list[str]
    rewards: list[str | None]
    datasets: list[str | None]
    seeds: list[int]
    recipe: str
    timesteps: int | None
    algorithm: str
    samples: int
    space: dict[str, dict[str, Any]]
    eval_seeds: int = 2
    eval_windows: int | None = 20
    cpus: float = 1.0
    max_concurrent: int | None = None
    raw: dict = field(default_factory=dict)

    @property
    def cells(self) -> list[tuple[str, str | None, str | None]]:
        """Every environment x reward x dataset."""
        return list(itertools.product(self.envs, self.rewards, self.datasets))


# ------------------------------------------------------------------ the sweep file

def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep file; relative paths in it are taken from the current folder, as on the
    command line. Every mistake is a :class:`SweepError` naming the file and the key."""
    from adascale_rl.environment.spec import SpecError, find_spec
    from adascale_rl.policies.ppo_hyperparams import HyperparamsError, parse

    p = Path(_existing(path) or path)
    doc = read_data(p, SweepError)
    where = str(p)
    if not isinstance(doc, dict):
        raise SweepError(f"{where}: a sweep file is a mapping (name, envs, seeds, search, ...)")
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise SweepError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")

    def listed(key: str, default: list) -> list:
        v = doc.get(key, default)
        v = v if isinstance(v, list) else [v]
        if not v:
            raise SweepError(f"{where}: {key} must list at least one value")
        return v

    name = str(doc.get("name") or p.stem)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise SweepError(f"{where}: name {name!r} must be letters, digits, '-' and '_'")
    envs = [str(e) for e in listed("envs", [])] if "envs" in doc else []
    if not envs:
        raise SweepError(f"{where}: envs must name at least one environment (an id, a spec name or a spec file)")
    specs = []
    for e in envs:
        try:
            specs.append(find_spec(str(Path(e).resolve()) if Path(e).exists() else e))
        except (SpecError, KeyError, FileNotFoundError, ValueError) as exc:
            raise SweepError(f"{where}: envs: {e!r} is not an environment ({exc})") from None
    envs = [str(Path(e).resolve()) if Path(e).exists() else e for e in envs]
    from adascale_rl.environment.reward import PRESETS

    rewards = listed("rewards", [None])
    for r in rewards:
        if r is not None and (not isinstance(r, str) or r not in PRESETS):
            raise SweepError(f"{where}: rewards: {r!r} is not a reward preset ({', '.join(PRESETS)}) or null")
    datasets = []
    for d in listed("datasets", [None]):
        if d is not None:
            try:
                d = str(paths.resolve(str(d), "traces"))  # a folder, or a shipped dataset by name
            except FileNotFoundError:
                raise SweepError(f"{where}: datasets: {d!r} is neither a folder nor a shipped dataset") from None
        datasets.append(d)
    seeds = listed("seeds", [0])
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) or len(set(seeds)) < len(seeds):
        raise SweepError(f"{where}: seeds must be distinct whole numbers >= 0, not {seeds!r}")
    from adascale_rl.policies.ppo_hyperparams import default_file

    if doc.get("recipe") is not None and not isinstance(doc.get("recipe"), str):
        raise SweepError(f"{where}: recipe must be a path to a recipe file, not {doc.get('recipe')!r}")
    recipe = _existing(doc.get("recipe") or str(default_file()))
    if recipe is None:
        raise SweepError(f"{where}: recipe {doc.get('recipe')!r} does not exist (here or under {paths.data_root()})")
    timesteps = doc.get("timesteps")
    if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, (int, float))
                                  or not math.isfinite(timesteps) or timesteps < 1 or int(timesteps) != timesteps):
        raise SweepError(f"{where}: timesteps must be a whole number >= 1, not {timesteps!r}")
    search = doc.get("search") or {}
    if not isinstance(search, dict) or set(search) - {"algorithm", "samples", "space"}:
        raise SweepError(f"{where}: search takes algorithm, samples and space")
    algorithm = search.get("algorithm", "grid")
    if algorithm not in ALGORITHMS:
        raise SweepError(f"{where}: search.algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    samples = search.get("samples", 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(f"{where}: search.samples must be a whole number >= 1, not {samples!r}")
    space = search.get("space") or {}
    if not isinstance(space, dict):
        raise SweepError(f"{where}: search.space maps recipe keys to {{grid: [...]}}, {{uniform: [lo, hi]}}, ...")
    for key, dist in space.items():
        _check_distribution(where, key, dist, algorithm)
    ev = doc.get("evaluate") or {}
    if not isinstance(ev, dict) or set(ev) - {"seeds", "windows"}:
        raise SweepError(f"{where}: evaluate takes seeds and windows")
    eval_seeds, windows = ev.get("seeds", 2), ev.get("windows", 20)
    if isinstance(eval_seeds, bool) or not isinstance(eval_seeds, int) or eval_seeds < 1:
        raise SweepError(f"{where}: evaluate.seeds must be a whole number >= 1, not {eval_seeds!r}")
    if windows is not None and (isinstance(windows, bool) or not isinstance(windows, int) or windows < 1):
        raise SweepError(f"{where}: evaluate.windows must be a whole number >= 1 or null, not {windows!r}")
    trial = doc.get("trial") or {}
    if not isinstance(trial, dict) or set(trial) - {"cpus"}:
        raise SweepError(f"{where}: trial takes cpus")
    cpus = trial.get("cpus", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0:
        raise SweepError(f"{where}: trial.cpus must be a number > 0, not {cpus!r}")
    max_concurrent = doc.get("max_concurrent")
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                       or max_concurrent < 1):
        raise SweepError(f"{where}: max_concurrent must be a whole number >= 1 or null, not {max_concurrent!r}")
    sweep = Sweep(p, name, envs, rewards, datasets, seeds, recipe, None if timesteps is None else int(timesteps),
                  algorithm, samples, dict(space), eval_seeds, windows, float(cpus), max_concurrent, raw=doc)
    # every recipe the study can make must parse: the extremes of every entry, for every environment
    for spec in specs:
        try:
            _, entry = _recipe_entry(recipe, spec)
            for hp in _corners(space):
                parse(merge(entry, hp), recipe, "default")
        except HyperparamsError as exc:
            raise SweepError(f"{where}: search.space makes a recipe that cannot be used: {exc}") from None
        except (SpecError, KeyError) as exc:
            raise SweepError(f"{where}: {exc}") from None
    return sweep


def _existing(path: str | os.PathLike) -> str | None:
    """An absolute path: ``path`` as given (from the current folder), else among the shipped agents
    (``agents/hyperparams/ppo.yml`` works from any folder); None if neither exists."""
    try:
        return str(paths.resolve(path, "agents").resolve())
    except FileNotFoundError:
        return None


def _check_distribution(where: str, key: str, dist: Any, algorithm: str) -> None:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise SweepError(f"{where}: search.space key {key!r} must be a recipe key (dotted for a nested one)")
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise SweepError(f"{where}: search.space.{key} must be one of {{grid: [...]}}, {{choice: [...]}}, "
                         f"{{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, {{randint: [lo, hi]}}")
    kind, values = next(iter(dist.items()))
    if not isinstance(values, list) or not values:
        raise SweepError(f"{where}: search.space.{key}.{kind} must be a non-empty list")
    if kind == "grid" and algorithm == "optuna":
        raise SweepError(f"{where}: search.space.{key}: optuna searches distributions, not grids; "
                         f"use {{choice: {values}}} (or search.algorithm: grid)")
    if kind in ("uniform", "loguniform", "randint"):
        ok = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not ok or not values[0] < values[1] or (kind == "loguniform" and values[0] <= 0):
            raise SweepError(f"{where}: search.space.{key}.{kind} must be [low, high] with low < high"
                             f"{' and low > 0' if kind == 'loguniform' else ''}, not {values!r}")


def _corners(space: dict) -> list[dict]:
    """The hyperparameter sets that bound the space: every grid/choice value, each range's ends."""
    options = []
    for key, dist in space.items():
        kind, values = next(iter(dist.items()))
        vals = list(values) if kind in ("grid", "choice") else [values[0], values[1] - (1 if kind == "randint" else 0)]
        options.append([(key, v) for v in vals])
    width = max((len(o) for o in options), default=1)
    return [dict(o[min(i, len(o) - 1)] for o in options) for i in range(width)] or [{}]


def merge(entry: dict, hp: dict) -> dict:
    """A recipe entry with ``hp`` set over it (``a.b.c`` sets a nested key)."""
    out = json.loads(json.dumps(entry))  # a deep copy of plain YAML data
    for key, value in hp.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SweepError(f"search.space key {key!r}: {part} is not a mapping in the recipe")
        node[parts[-1]] = value
    return out


def _recipe_entry(recipe: str, spec) -> tuple[str, dict]:
    from adascale_rl.policies.ppo_hyperparams import lookup, read_file

    path, doc = read_file(recipe)
    return lookup(doc, spec.id, spec.name, path)


def hp_key(hp: dict) -> str:
    """A short stable name for a hyperparameter set (the run folders and recipe files use it)."""
    return "hp-" + hashlib.sha1(json.dumps(hp, sort_keys=True, default=str).encode()).hexdigest()[:8]


def cell_key(env: str, reward: str | None, dataset: str | None) -> str:
    base = Path(env).stem if env.endswith((".yaml", ".yml")) else env.split("/")[-1]
    return "-".join([base, reward or "spec-reward", Path(dataset).name if dataset else "spec-data"])


# ------------------------------------------------------------------ one trial

def trial(config: dict, study: dict) -> None:
    """The trainable: train one controller, evaluate its best checkpoint on the validation split, report.

    Runs in a Ray worker. ``config`` holds this trial's environment, reward, dataset, seed and
    hyperparameters; ``study`` the sweep's constants (absolute paths)."""
    import torch as th
    from ray import tune

    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.environment.spec import find_spec
    from adascale_rl.policies import ppo_run
    from adascale_rl.policies.ppo import load_policy, train
    from adascale_rl.policies.ppo_run import pick_episodes
    from adascale_rl.policies.rollout import evaluate
    from adascale_rl.evaluation.core import aggregate

    th.set_num_threads(1)
    started = time.time()
    seed = config["seed"] if "seed" in config else study["seeds"][config.get("__trial_index__", 0)]
    hp = dict(config.get("hp") or {})
    env, reward, dataset = config["env"], config["reward"], config["dataset"]
    spec = find_spec(env)
    out = Path(study["out"])
    key = hp_key(hp)
    recipe_file = out / "recipes" / f"{cell_key(env, reward, dataset)}-{key}.yml"
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    _, entry = _recipe_entry(study["recipe"], spec)
    recipe_file.write_text(yaml.safe_dump({"default": merge(entry, hp)}, sort_keys=False), encoding="utf-8")
    env_kwargs = {k: v for k, v in (("reward", reward), ("dataset", dataset)) if v is not None}
    run = out / "runs" / cell_key(env, reward, dataset) / key / f"seed{seed}"
    if (run / ppo_run.MODEL).exists():  # an interrupted trial: its training resumes from the last checkpoint
        train(env, timesteps=study["timesteps"], resume=run, progress=False)
    else:
        train(env, timesteps=study["timesteps"], seed=seed, out=run, hyperparams=recipe_file, env_kwargs=env_kwargs,
              progress=False)
    state = ppo_run.RunFolder(run).read_config()["state"]
    val = AdaScaleEnv(spec, split="val", **env_kwargs)
    windows = pick_episodes(val.evaluation_episodes(), study["eval_windows"])
    seeds = list(range(study["eval_seeds"]))
    a = aggregate(evaluate(val, load_policy(run), seeds, windows), seeds)
    tune.report({"val_return": a["return"], "val_ci95": a["ci95_return"],
                 **{k: a[k] for k in ("effective_accuracy", "miss_rate", "mean_latency_ms", "energy_j", "switches",
                                      "oom_kills", "episodes")},
                 "train_best_val_return": state["best_val_return"], "train_best_at": state["best_at"],
                 "train_wall_time_s": state["wall_time_s"], "trial_wall_time_s": round(time.time() - started, 2),
                 "seed_used": seed, "run": str(run)})


# ------------------------------------------------------------------ the study

def _domain(tune, dist: dict):
    kind, values = next(iter(dist.items()))
    if kind == "grid":
        return tune.grid_search(list(values))
    if kind == "choice":
        return tune.choice(list(values))
    if kind == "uniform":
        return tune.uniform(*values)
    if kind == "loguniform":
        return tune.loguniform(*values)
    return tune.randint(values[0], values[1])


def run_sweep(path: str | os.PathLike, out: str | os.PathLike | None = None, address: str | None = None,
              progress: bool = True) -> Path:
    """Run (or resume) the study of a sweep file; returns the output folder with results.csv and results.md."""
    sweep = load_sweep(path)  # the file's mistakes first: they do not wait for Ray to be installed
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError(MISSING_RAY) from None
    out = Path(out if out is not None else Path("sweeps") / sweep.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "sweep.yml"
    if saved.exists():
        if yaml.safe_load(saved.read_text(encoding="utf-8")) != sweep.raw:
            raise SweepError(f"{out} holds a study of another sweep file (its sweep.yml differs from {sweep.path}); "
                             f"choose another --out")
    else:
        saved.write_text(yaml.safe_dump(sweep.raw, sort_keys=False), encoding="utf-8")
    study = {"out": str(out), "recipe": sweep.recipe, "timesteps": sweep.timesteps, "seeds": sweep.seeds,
             "eval_seeds": sweep.eval_seeds, "eval_windows": sweep.eval_windows}
    started = not ray.is_initialized()  # a Ray this call starts (in-process, or connected) is shut down by it
    if started:
        if address:
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as exc:
                raise SweepError(f"--address {address}: no Ray cluster reachable there ({exc}); start one with "
                                 f"`ray start --head`, or leave out --address to run on this machine") from None
        else:
            ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024,
                     configure_logging=False)
    try:
        trainable = tune.with_resources(tune.with_parameters(trial, study=study), {"cpu": sweep.cpus})
        space = {k: _domain(tune, d) for k, d in sweep.space.items()}
        storage = out / "tune"
        reporter = _Progress(progress)
        grids = []
        if sweep.algorithm == "grid":
            param_space = {"env": tune.grid_search(sweep.envs), "reward": tune.grid_search(sweep.rewards),
                           "dataset": tune.grid_search(sweep.datasets), "seed": tune.grid_search(sweep.seeds),
                           "hp": space}
            tune_config = tune.TuneConfig(metric=METRIC, mode="max", num_samples=sweep.samples,
                                          max_concurrent_trials=sweep.max_concurrent)
            grids.append(_fit(tune, trainable, storage, sweep.name, param_space, tune_config, reporter))
        else:
            from ray.tune.search import Repeater
            from ray.tune.search.optuna import OptunaSearch

            for env, reward, dataset in sweep.cells:
                searcher = Repeater(OptunaSearch(metric=METRIC, mode="max", seed=sweep.seeds[0]),
                                    repeat=len(sweep.seeds))
                tune_config = tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher,
                                              num_samples=sweep.samples * len(sweep.seeds),
                                              max_concurrent_trials=sweep.max_concurrent)
                param_space = {"env": env, "reward": reward, "dataset": dataset, "hp": space}
                grids.append(_fit(tune, trainable, storage, f"{sweep.name}-{cell_key(env, reward, dataset)}",
                                  param_space, tune_config, reporter))
        rows = gather(grids, sweep)
        write_results(rows, sweep, out)
    finally:
        if started:
            ray.shutdown()
    return out


class _Progress:
    """One line per finished trial (Ray's own table is switched off)."""

    def __init__(self, on: bool):
        self.on = on
        self.done = 0

    def callback(self):
        from ray.tune import Callback

        outer = self

        class _Line(Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                outer.done += 1
                if outer.on:
                    r = trial.last_result or {}
                    print(f"trial {outer.done}: {_describe(trial.config)} seed {r.get('seed_used', '?')}: "
                          f"validation return {r.get('val_return', float('nan')):.3f}", flush=True)

            def on_trial_error(self, iteration, trials, trial, **info):
                outer.done += 1
                print(f"trial {outer.done}: {_describe(trial.config)} failed; see {trial.path}", file=sys.stderr,
                      flush=True)

        return _Line()


def _describe(config: dict) -> str:
    hp = config.get("hp") or {}
    parts = [config.get("env", "?"), config.get("reward") or "spec reward"]
    if config.get("dataset"):
        parts.append(Path(config["dataset"]).name)
    return " ".join(str(p) for p in parts) + (" " + json.dumps(hp, sort_keys=True) if hp else "")


def _fit(tune, trainable, storage: Path, name: str, param_space: dict, tune_config, reporter: _Progress):
    """A new Tune experiment, or the restored one when ``storage/name`` holds it (finished trials kept)."""
    exp = storage / name
    if tune.Tuner.can_restore(str(exp)):
        print(f"resuming the study in {exp} (finished trials are kept)", flush=True)
        tuner = tune.Tuner.restore(str(exp), trainable=trainable, resume_errored=True)
    else:
        run_config = tune.RunConfig(name=name, storage_path=str(storage), verbose=0,
                                    failure_config=tune.FailureConfig(max_failures=0),
                                    callbacks=[reporter.callback()])
        tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)
    return tuner.fit()


# ------------------------------------------------------------------ results

def gather(grids: Sequence, sweep: Sweep) -> list[dict]:
    """One row per trial of every Tune result grid: its dimensions, hyperparameters and reported metrics."""
    rows = []
    for grid in grids:
        for r in grid:
            cfg = r.config or {}
            m = r.metrics or {}
            seed = cfg.get("seed", m.get("seed_used"))
            if seed is None and "__trial_index__" in cfg:
                seed = sweep.seeds[cfg["__trial_index__"]]
            row = {"env": cfg.get("env"), "reward": cfg.get("reward") or "", "dataset": cfg.get("dataset") or "",
                   "seed": seed, "hp_key": hp_key(dict(cfg.get("hp") or {})),
                   "hyperparams": json.dumps(cfg.get("hp") or {}, sort_keys=True),
                   "status": "error" if r.error else ("done" if METRIC in m else "unfinished")}
            row.update({k: m.get(k) for k in REPORTED})
            row["run"] = m.get("run", "")
            row["error"] = "" if not r.error else str(r.error).strip().splitlines()[-1][:200]
            rows.append(row)
    rows.sort(key=lambda x: (str(x["env"]), x["reward"], x["dataset"], x["hp_key"], x["seed"] if x["seed"] is not None
                             else -1))
    return rows


def summarise(rows: Sequence[dict]) -> list[dict]:
    """One row per environment x reward x dataset x hyperparameter set: the mean validation return over
    the training seeds and its 95 % CI (t-distribution), best first within each environment."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "done":
            groups.setdefault((r["env"], r["reward"], r["dataset"], r["hyperparams"]), []).append(r)
    out = []
    for (env, reward, dataset, hp), rs in groups.items():
        vals = [float(r["val_return"]) for r in rs]
        shown = {k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in json.loads(hp).items()}
        out.append({"env": env, "reward": reward or "(spec)", "dataset": Path(dataset).name if dataset else "(spec)",
                    "hyperparams": json.dumps(shown), "val_return": float(np.mean(vals)), "ci95": ci95(vals),
                    "seeds": ",".join(str(r["seed"]) for r in rs),
                    **{k: float(np.mean([float(r[k]) for r in rs]))
                       for k in ("effective_accuracy", "miss_rate", "energy_j", "switches")}})
    out.sort(key=lambda x: (x["env"], x["reward"], x["dataset"], -x["val_return"]))
    return out


def write_results(rows: Sequence[dict], sweep: Sweep, out: Path) -> None:
    from adascale_rl._files import atomic_write_text
    from adascale_rl.evaluation.report import machine
    from adascale_rl.policies.ppo import portable_path

    fields = ["env", "reward", "dataset", "seed", "hp_key", "hyperparams", "status", *REPORTED, "run", "error"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
    atomic_write_text(out / "results.csv", buf.getvalue())
    summary = summarise(rows)
    done = sum(r["status"] == "done" for r in rows)
    lines = [f"# Sweep `{sweep.name}`", "",
             f"`{command_line('adascale-rl sweep')}`: {len(rows)} trials ({done} finished, {len(rows) - done} not); "
             f"{sweep.algorithm} search over {len(sweep.envs)} environment(s) x {len(sweep.rewards)} reward preset(s) x "
             f"{len(sweep.datasets)} dataset(s) x {len(sweep.seeds)} training seed(s); "
             f"{sweep.timesteps or 'the recipe' + chr(39) + 's'} timesteps per trial with the recipe "
             f"`{portable_path(sweep.recipe)}`. "
             f"Validation return: mean episode return of the best checkpoint on the validation split "
             f"({sweep.eval_seeds} evaluation seed(s), at most {sweep.eval_windows or 'all'} windows); the 95 % CI "
             f"is over the training seeds (t-distribution; n/a with one seed). Machine: {machine()}.", "",
             "## Best configuration per environment", "",
             "Returns under different reward presets or datasets are not comparable, so each is its own row.", "",
             HEADER, "|---|---|---|---|---|---|---|---|---|---|---|"]
    best = {}
    for s in summary:
        best.setdefault((s["env"], s["reward"], s["dataset"]), s)
    lines += [_md_row(s) for s in best.values()]
    lines += ["", "## Every configuration", "", HEADER, "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_md_row(s) for s in summary]
    failed = [r for r in rows if r["status"] != "done"]
    if failed:
        lines += ["", "## Trials without a result", ""]
        lines += [f"- {r['env']} {r['reward']} seed {r['seed']} {r['hyperparams']}: {r['status']}"
                  f"{': ' + r['error'] if r['error'] else ''}" for r in failed]
    lines += ["", "Every trial's row (and its run folder) is in `results.csv`."]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


HEADER = ("| environment | reward | dataset | hyperparameters | validation return | ± 95% CI | seeds | "
          "eff. accuracy | miss rate | energy J | switches |")


def _md_row(s: dict) -> str:
    ci = "n/a" if math.isnan(s["ci95"]) else f"{s['ci95']:.2f}"
    hp = s["hyperparams"] if s["hyperparams"] != "{}" else "(the recipe's)"
    return (f"| {s['env']} | {s['reward']} | {s['dataset']} | `{hp}` | {s['val_return']:.2f} | {ci} | {s['seeds']} | "
            f"{s['effective_accuracy']:.3f} | {s['miss_rate']:.3f} | {s['energy_j']:.1f} | {s['switches']:.1f} |")


def sweep_command(args) -> int:
    """``adascale-rl sweep``: arguments from :mod:`adascale_rl.cli`."""
    out = run_sweep(args.config, out=args.out, address=args.address, progress=not args.no_progress)
    print(f"wrote {out / 'results.csv'} and {out / 'results.md'}")
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        status = [r["status"] for r in csv.DictReader(fh)]
    missing = len(status) - status.count("done")
    if missing:
        print(f"{missing} of {len(status)} trials have no result (interrupted or failed; results.md lists them): "
              f"run the same command again to resume the study", file=sys.stderr)
        return 1
    return 0
