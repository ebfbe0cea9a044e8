"""``adascale-rl bench`` and ``adascale-rl evaluate``.

``bench`` runs every heuristic (margins tuned on the train split), the two
references and the trained controllers on the test split of each environment —
or on any trace dataset or folder of trace CSVs given with ``--traces`` — over
several seeds, on identical traces and noise, and writes ``results.csv``,
``results.md`` and PNG plots.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from adascale_rl import paths
from adascale_rl._cpus import usable_cpus
from adascale_rl._files import command_line
from adascale_rl.environment.env import AdaScaleEnv, replay_note
from adascale_rl.environment.spec import find_spec
from adascale_rl.evaluation import plots, report
from adascale_rl.evaluation.core import aggregate, evaluate, run_episode, episode_seed, tune
from adascale_rl.policies import BUILTIN, did_you_mean, make_policy

DEFAULT_ENV = "AdaScale/Rpi4-Vision-v4"


#: built-in policies bench runs only when --policies names them: slow diagnostics
#: (the context oracle plans for 4 noise samples, several seconds per episode)
OPT_IN = ("context-oracle",)


class OracleBeaten(RuntimeError):
    """A policy scored above the clairvoyant oracle on an evaluated trace: the oracle or the simulator is wrong.
    ``bench`` still writes its results, then fails with this (naming the traces)."""


def check_seeds(seeds: Any) -> list[int]:
    """Evaluation seeds ``0 .. seeds-1``; a count below 1 is a ValueError naming it (never a silent default)."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"--seeds {seeds}: give at least 1 evaluation seed (seeds 0 .. N-1 are used)")
    return list(range(int(seeds)))


def parse_policies(text: str | None) -> list[str] | None:
    """``--policies`` as a list of names: comma-separated, spaces around names ignored."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--policies {text!r} names no policy")
    return names


def builtin_names(policies: Sequence[str] | None) -> list[str]:
    """The built-in policies a bench runs: all but :data:`OPT_IN`, or those ``policies`` names."""
    if policies is None:
        return [n for n in BUILTIN if n not in OPT_IN]
    return [n for n in BUILTIN if n in policies]


def learned_controllers(spec_name: str) -> dict[str, Path]:
    """Shipped controllers for an environment: ``agents/<env-name>/<algo>/``."""
    root = paths.agents_dir() / spec_name
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "model.zip").exists() or (p / "best_model.zip").exists()}


def learned_for(spec, policies: Sequence[str] | None) -> dict[str, Path]:
    """The learned controllers a bench runs on ``spec``: label -> folder. The shipped ones of a
    shipped environment, labelled by their folder (``ppo``: the planner prior with a PPO residual;
    ``ppo-noprior``: PPO alone), and run folders or model files named in ``policies``."""
    shipped = spec.path is not None and _inside(spec.path, paths.envs_dir())
    learned = dict(learned_controllers(spec.name) if shipped else {})
    for extra in policies or []:
        if extra not in BUILTIN and Path(extra).exists():
            learned[Path(extra).name] = Path(extra)
    return {k: v for k, v in learned.items() if policies is None or k in policies or str(v) in policies}


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def check_policies(specs: Sequence[Any], policies: Sequence[str] | None) -> None:
    """Refuse, before any work, a ``--policies`` name that is neither built in, nor a learned
    controller of one of the environments, nor an existing run folder; and a selection that
    leaves an environment with no policy."""
    if policies is None:
        return
    labels = {k for spec in specs for k in learned_for(spec, None)}
    for name in policies:
        if name in BUILTIN or name in labels or Path(name).exists():
            continue
        known = [*BUILTIN, *sorted(labels)]
        raise ValueError(f"unknown policy {name!r} in --policies{did_you_mean(name, known)}; known: "
                         f"{', '.join(known)}, or a trained run folder")
    for spec in specs:
        if not builtin_names(policies) and not learned_for(spec, policies):
            raise ValueError(f"none of --policies {','.join(policies)} applies to {spec.id} "
                             f"(it has no shipped learned controller)")


def _env(spec, split: str, traces: str | None, env_kwargs: Mapping[str, Any] | None = None) -> AdaScaleEnv:
    kw = dict(env_kwargs or {})
    if traces is None:
        return AdaScaleEnv(spec, split=split, **kw)
    env = AdaScaleEnv(spec, split="all", dataset=traces, **kw)
    if split == "test" and not env.dataset.test:
        return env  # a dataset without a test split (a recording's train/ only): all of it, and data_notes says so
    return env if split == "all" else AdaScaleEnv(spec, split=split, dataset=traces, **kw)


def data_notes(spec, env: AdaScaleEnv, traces: str | None) -> list[str]:
    """What an evaluation runs on, in words: which traces of which dataset, and on which device
    they are replayed when they were recorded on another."""
    ds = env.dataset
    names = [t.name.split("/", 1)[-1] for t in env.traces]
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    n = f"{len(names)} trace{'' if len(names) == 1 else 's'}"
    if traces is None:
        what = f"the {env.split} split of {ds.name} ({n})"
    elif not ds.train and ds.meta.get("source") == "user":
        what = f"the {n} in {traces} ({shown})"
    elif env.split == "all" and not ds.test:
        what = (f"all {n} of {traces} ({shown}): it has no test split, so its train traces are "
                f"evaluated (a controller trained on them with train --traces has seen them)")
    else:
        what = f"the {env.split} split of {traces}, {n} ({shown})"
    notes = [f"{spec.id}: evaluated on {what}"]
    replay = replay_note(ds, env.device)
    if replay:
        notes.append(f"{spec.id}: {replay}")
    return notes


def _plain(x: Any) -> Any:
    """numpy scalars (which the environment takes) as plain numbers for JSON."""
    return x.item() if hasattr(x, "item") else str(x)


def env_kwargs_from(items: Sequence[str] | None) -> dict[str, Any]:
    """``--env-kwargs`` of bench and evaluate: as ``train`` reads them, without ``dataset``
    (the data to evaluate on is ``--traces``; heuristics are tuned on the spec's train split)."""
    from adascale_rl.policies.ppo import check_env_kwargs, parse_env_kwargs

    kw = check_env_kwargs(parse_env_kwargs(list(items or [])))
    if "dataset" in kw:
        raise ValueError("--env-kwargs dataset=... is not taken here (bench and evaluate take the traces to "
                         "evaluate on as --traces; heuristics are tuned on the environment's own train split)")
    return kw


def trained_with(policy: Any, env_kwargs: Mapping[str, Any], spec: Any = None) -> str | None:
    """A note when a learned controller's run was trained on another environment than ``spec`` (another id, or
    another file of the same id: a calibrated copy) or under other environment arguments than the ones it is
    evaluated under (``dataset`` aside), else None (also for a policy without a run config: a heuristic, or a
    bare model file)."""
    from adascale_rl.policies.ppo import resolve_portable

    config = getattr(policy, "config", None)
    if not config:
        return None
    said = []
    trained_on, trained_file = config.get("env"), config.get("env_spec")
    if spec is not None and trained_on and trained_on != spec.id:
        said.append(f"{policy.name} was trained on {trained_on} and is evaluated here on {spec.id}")
    elif (spec is not None and trained_file and spec.path is not None
          and resolve_portable(trained_file).resolve() != Path(spec.path).resolve()):
        said.append(f"{policy.name} was trained on {trained_file} and is evaluated here on {spec.path} (the same "
                    f"id, {spec.id}; e.g. a calibrated copy)")
    trained = {k: v for k, v in (config.get("env_kwargs") or {}).items() if k != "dataset"}
    if trained != dict(env_kwargs):
        said.append(f"{policy.name} was trained with environment arguments {trained or 'none'} and is evaluated "
                    f"here with {dict(env_kwargs) or 'none'}")
    return "; ".join(said) or None


def tuned_params(name: str, train_env: AdaScaleEnv, quick: bool = False) -> dict | None:
    """The margins of built-in ``name`` tuned on ``train_env`` as bench tunes them (None: nothing to tune)."""
    probe = BUILTIN[name]()
    if name == "best-fixed":
        grid = {"variant": list(range(len(train_env.catalog)))}
    else:
        grid = dict(getattr(probe, "PARAM_GRID", {}))
    if not grid or probe.kind != "heuristic":
        return None
    params, _ = tune(train_env, lambda **kw: make_policy(name, **kw), grid, max_episodes=3 if quick else 8)
    return params


def built_policy(name: str, params: dict | None, catalog) -> tuple[object, dict]:
    """Built-in ``name`` with the :func:`tuned_params` ``params``; (policy, params as the results show them)."""
    if params is None:
        return BUILTIN[name](), {}
    policy = make_policy(name, **params)
    if name == "best-fixed":
        return policy, {"variant": catalog.variants[params["variant"]].id}
    return policy, dict(params)


def tuned_policy(name: str, train_env: AdaScaleEnv, quick: bool = False) -> tuple[object, dict]:
    """A built-in policy with its margins tuned on ``train_env`` as bench tunes them; (policy, params)."""
    return built_policy(name, tuned_params(name, train_env, quick), train_env.catalog)


def bench(envs: Sequence[str], *, seeds: int = 5, traces: str | None = None, quick: bool = False,
          out: str | Path = "bench-out", policies: Sequence[str] | None = None, progress: bool = True,
          command: str = "adascale-rl bench", env_kwargs: Mapping[str, Any] | None = None,
          jobs: int = 1) -> list[dict]:
    """Every built-in policy (margins tuned on the train split) and the learned controllers
    on the test split, paired over ``seeds``; ``env_kwargs`` go to every environment
    (train and test) as ``train --env-kwargs`` does. Writes ``results.csv``, ``results.md``,
    ``returns.png`` and ``timeline-<env>.png`` into ``out``, replacing a previous bench's.

    ``jobs`` > 1 plays the policies in that many worker processes (``spawn``: a script that calls
    this needs the ``if __name__ == "__main__":`` guard); the results are the same numbers as with
    one (every episode is played by the same code from the same seed; a test checks it)."""
    env_kwargs = dict(env_kwargs or {})
    seed_list = check_seeds(seeds)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of at least 1 (1: everything in this process), not {jobs!r}")
    specs = [find_spec(e) for e in envs]
    check_policies(specs, policies)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; bench writes a folder (results.csv, results.md, plots): "
                         f"name a folder")
    # everything is written into a scratch folder first and moved into `out` at the end: a run that
    # fails or is interrupted leaves `out` as it was, and a finished one replaces the previous results
    work = Path(tempfile.mkdtemp(prefix="adascale-bench-"))
    try:
        rows, beaten = _bench(specs, seed_list, traces, quick, work, policies, progress, command, env_kwargs, jobs)
        publish(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if beaten:
        raise OracleBeaten("the clairvoyant oracle was beaten, which must not happen (a bug in the oracle or the "
                           "simulator): " + "; ".join(beaten) + f" (results written to {out})")
    return rows


#: the files a bench writes (and a re-run into the same folder replaces), besides timeline-<env>.png
OUTPUTS = ("results.csv", "results.md", "returns.png")


def publish(work: Path, out: Path) -> None:
    """Move a finished bench's files from ``work`` into ``out``, removing the previous run's
    results there first (a previous timeline of another environment must not look current)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in [*(out / n for n in OUTPUTS), *out.glob("timeline-*.png")]:
        old.unlink(missing_ok=True)
    for f in sorted(work.iterdir()):
        shutil.move(str(f), str(out / f.name))


#: built-ins whose episodes depend on the episode alone (they plan at reset and carry nothing from one
#: episode to the next): with jobs > 1 each evaluation seed is its own job, as for the learned controllers.
#: Every other built-in is one job (tuning, then every seed in order), so one that carries state across
#: episodes (random's generator) plays exactly the episodes it plays in one process.
SPLIT_BY_SEED = ("oracle", "context-oracle")

_WORKER: dict[str, Any] = {}  # a worker process's progress queue and environments


def _worker_init(progress, parent: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the processes are the parallelism: one thread each
        os.environ.setdefault(var, "1")
    _WORKER.update(progress=progress, envs={})
    # a bench killed outright (SIGKILL, an OOM kill) cannot stop its workers: each stops itself, as the load
    # children of adascale_rl.context.load do, once its parent is gone (mid-episode, not a job later)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int, every_s: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _worker_env(spec, split: str, traces: str | None, env_kwargs: Mapping[str, Any]) -> AdaScaleEnv:
    """A worker's environment of ``split`` (of ``traces`` where given), built once per worker."""
    key = (pickle.dumps(spec), split, traces)
    env = _WORKER["envs"].get(key)
    if env is None:
        env = _WORKER["envs"][key] = _env(spec, split, traces, env_kwargs)
    return env


def _worker_progress(n: int) -> None:
    _WORKER["progress"].put((_WORKER["token"], n))


def _play_builtin(token, spec, traces, env_kwargs, name, quick, seeds, episodes, split="test"):
    """In a worker: tune built-in ``name`` on the train split, then play ``seeds`` x ``episodes`` of ``split``;
    (params, results). Progress goes to the parent's queue as (``token``, episodes)."""
    _WORKER["token"] = token
    train_env = _worker_env(spec, "train", None, env_kwargs)  # tuned on the environment's own train split
    params = tuned_params(name, train_env, quick)
    policy, _ = built_policy(name, params, train_env.catalog)
    policy.name = name
    env = _worker_env(spec, split, traces, env_kwargs)
    return params, evaluate(env, policy, seeds, episodes, progress=_worker_progress)


def _play_learned(token, spec, traces, env_kwargs, label, path, seeds, episodes, split="test"):
    """In a worker: the learned controller in ``path`` on ``seeds`` x ``episodes`` of ``split``; (None, results)."""
    from adascale_rl.policies.ppo import load_policy

    _WORKER["token"] = token
    policy = load_policy(path)
    policy.name = label
    return None, evaluate(_worker_env(spec, split, traces, env_kwargs), policy, seeds, episodes,
                          progress=_worker_progress)


class _Workers:
    """``jobs`` worker processes for :func:`bench` (none for one job: everything runs in this process)."""

    def __init__(self, jobs: int):
        self.jobs, self.pool, self._progress, self._token = jobs, None, None, 0

    def __enter__(self) -> "_Workers":
        if self.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")  # not fork: the parent may hold torch's threads
            self._progress = ctx.Queue()
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_worker_init,
                                            initargs=(self._progress, os.getpid()))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.pool is None:
            return
        if exc_type is not None:  # an error or ^C: the other jobs' results are not wanted
            running = list((getattr(self.pool, "_processes", None) or {}).values())  # no public way to stop them
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in running:
                proc.terminate()
        self.pool.shutdown(wait=True)

    def _drain(self, bar) -> None:
        import queue

        while True:
            try:
                token, n = self._progress.get_nowait()
            except queue.Empty:
                return
            if token == self._token:  # not a late count of an earlier environment's
                bar.update(n)

    def collect(self, pending: dict, bar) -> dict:
        """Wait for every future in ``pending`` (future -> key), feeding the workers' progress to ``bar``; {key:
        the future's result}. A worker's exception is raised here."""
        from concurrent.futures import FIRST_COMPLETED, wait

        out = {}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            self._drain(bar)
            for future in done:
                out[pending.pop(future)] = future.result()
        self._drain(bar)
        bar.update(bar.total - bar.n)  # progress still in the queue's pipe when the last result came
        return out

    def _submit_seeds(self, args: tuple, name: str, path: str | None, quick: bool, seeds, episodes,
                      split: str = "test") -> dict:
        """One job per seed for one policy: a built-in of :data:`SPLIT_BY_SEED` (``path`` None) or the learned
        controller in the folder ``path`` (named ``name``); {future: (name, seed)}."""
        fn, extra = (_play_builtin, (name, quick)) if path is None else (_play_learned, (name, path))
        return {self.pool.submit(fn, *args, *extra, [s], episodes, split): (name, s) for s in seeds}

    def play_seeds(self, spec, traces, env_kwargs, split: str, name: str, path: str | None, seeds, episodes,
                   bar) -> list:
        """One policy on ``split``, each seed its own job (:meth:`_submit_seeds`); the results in seed order, as
        one process plays them."""
        self._token += 1
        pending = self._submit_seeds((self._token, spec, traces, env_kwargs), name, path, False, seeds, episodes,
                                     split)
        done = self.collect(pending, bar)
        return [r for s in seeds for r in done[name, s][1]]

    def play(self, spec, traces, env_kwargs, quick, names, learned, seeds, episodes, bar):
        """Every built-in in ``names`` (tuned) and every learned controller, as :func:`_bench` plays them in one
        process; returns (results by policy in the order of ``names`` then ``learned``, tuned params by name)."""
        self._token += 1
        args = (self._token, spec, traces, env_kwargs)
        pending = {}
        # split by seed, submitted first: the oracle's planning (the longest job) and the learned controllers
        # (each seed's episodes one batched forward per step, rollout.evaluate)
        for name in (n for n in names if n in SPLIT_BY_SEED):
            pending.update(self._submit_seeds(args, name, None, quick, seeds, episodes))
        for label, path in learned.items():
            pending.update(self._submit_seeds(args, label, str(path), quick, seeds, episodes))
        for name in (n for n in names if n not in SPLIT_BY_SEED):
            pending[self.pool.submit(_play_builtin, *args, name, quick, list(seeds), episodes)] = (name, None)
        done = self.collect(pending, bar)
        parts = {key: res for key, (_, res) in done.items()}
        tuned = {}
        for (label, _), (params, _) in done.items():
            if label not in learned:
                tuned.setdefault(label, params)
        results = {}
        for label in [*names, *learned]:
            split = label in learned or label in SPLIT_BY_SEED
            results[label] = [r for s in seeds for r in parts[label, s]] if split else parts[label, None]
        return results, tuned


def _bench(specs, seed_list, traces, quick, out: Path, policies, progress, command, env_kwargs,
           jobs: int = 1) -> list[dict]:
    from tqdm.auto import tqdm

    rows: list[dict] = []
    notes: list[str] = [f"environment arguments: {env_kwargs}"] if env_kwargs else []
    beaten: list[str] = []
    windows: dict[str, tuple[int, float]] = {}
    with _Workers(jobs) as workers:
        for spec in specs:
            test_env = _env(spec, "test", traces, env_kwargs)
            windows[spec.id] = (test_env.window, test_env.period_s)
            train_env = AdaScaleEnv(spec, split="train", **env_kwargs)
            said = data_notes(spec, test_env, traces)
            for n in said[1:] if traces is None else said:  # what a user should know before the table
                print(f"note: {n}", file=sys.stderr)
            notes += said
            episodes = test_env.evaluation_episodes()
            if quick:
                every = len(episodes)
                episodes = episodes[: max(2, len(episodes) // 4)]
                if len(episodes) < every:
                    notes.append(f"{spec.id}: --quick: the first {len(episodes)} of the {every} evaluation windows")
            names = builtin_names(policies)
            learned = learned_for(spec, policies)
            total = (len(names) + len(learned)) * len(seed_list) * len(episodes)
            bar = tqdm(total=total, desc=spec.name, disable=not progress, unit="ep")
            kinds, params_of, objs = {}, {}, {}
            if workers.pool is not None:
                bar.set_postfix_str(f"{workers.jobs} processes")
                results, tuned = workers.play(spec, traces, env_kwargs, quick, names, learned, seed_list, episodes,
                                              bar)
            else:
                results, tuned = {}, {}
            for name in names:
                if workers.pool is None:
                    bar.set_postfix_str(f"tuning {name}" if BUILTIN[name]().kind == "heuristic" else name)
                    tuned[name] = tuned_params(name, train_env, quick)
                policy, params = built_policy(name, tuned[name], train_env.catalog)
                policy.name = name
                params_of[name] = params
                kinds[name] = policy.kind
                objs[name] = policy
                if workers.pool is None:
                    results[name] = evaluate(test_env, policy, seed_list, episodes, progress=bar.update)
            for label, path in learned.items():
                from adascale_rl.policies.ppo import load_policy

                policy = load_policy(path)
                policy.name = label
                mismatch = trained_with(policy, env_kwargs, spec)
                if mismatch:
                    notes.append(f"{spec.id}: {mismatch}")
                kinds[label] = "learned"
                params_of[label] = {"path": str(path)}
                objs[label] = policy
                if workers.pool is None:
                    results[label] = evaluate(test_env, policy, seed_list, episodes, progress=bar.update)
            bar.close()
            agg = {k: aggregate(v, seed_list) for k, v in results.items()}
            oracle = agg.get("oracle", {}).get("return")
            if oracle is not None and not oracle > 0:
                # a ratio of returns reads backwards below zero (the worse policy the larger): none is shown
                notes.append(f"{spec.id}: the oracle's mean return is {oracle:.2f}, not positive: 'vs oracle' is "
                             f"n/a; compare the returns")
                oracle = None
            largest = agg.get("static-largest")
            for name, a in agg.items():
                rows.append({
                    "env": spec.id, "policy": name, "kind": kinds[name], "mean_return": a["return"],
                    "ci95_return": a["ci95_return"], "effective_accuracy": a["effective_accuracy"],
                    "miss_rate": a["miss_rate"], "mean_latency_ms": a["mean_latency_ms"], "energy_j": a["energy_j"],
                    "oom_kills": a["oom_kills"], "switches": a["switches"],
                    "return_vs_oracle": a["return"] / oracle if oracle else float("nan"),
                    **report.vs_largest(a, largest),
                    "episodes": a["episodes"], "params": json.dumps(params_of[name], sort_keys=True),
                    "env_kwargs": json.dumps(env_kwargs, sort_keys=True, default=_plain),
                })
            if "oracle" in results:
                note, bad = _oracle_check(spec.id, results, test_env)
                notes.append(note)
                beaten += bad
            _timeline(spec, test_env, episodes[0], objs, kinds, agg, out)
    report.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(report.markdown(rows, command=command, seeds=seed_list, notes=notes,
                                                    episodes=windows))
    plots.plot_returns(rows, out / "returns.png")
    return rows, beaten


def _oracle_check(env_id: str, results: dict, env: AdaScaleEnv) -> tuple[str, list[str]]:
    """The oracle must score at least as high as every other policy on every evaluated trace:
    (a note for the report, what beat it where)."""
    def by_trace(res):
        d = {}
        for r in res:
            d.setdefault(r.trace, []).append(r.metrics["return"])
        return {k: float(np.mean(v)) for k, v in d.items()}

    oracle = by_trace(results["oracle"])
    if not oracle:
        return f"{env_id}: no trace was evaluated; the oracle was not checked", []
    bad = []
    for name, res in results.items():
        if name == "oracle":
            continue
        for trace, value in by_trace(res).items():
            if value > oracle[trace] + 1e-9:
                bad.append(f"{env_id}: {name} on trace {env.traces[trace].name} ({value:.2f} > {oracle[trace]:.2f})")
    if bad:
        return f"{env_id}: the oracle is beaten on: " + "; ".join(bad), bad
    return f"{env_id}: the oracle scores at least as high as every other policy on every evaluated trace.", []


def _timeline(spec, env, episode, policies: dict, kinds: dict, agg: dict, out: Path) -> None:
    """Re-run the first test episode (seed 0) with records for the oracle, the best heuristic and a learned one."""
    trace, start = episode
    show = ["oracle"] if "oracle" in policies else []
    heur = [k for k in policies if kinds[k] == "heuristic"]
    if heur:
        show.append(max(heur, key=lambda k: agg[k]["return"]))
    show += [k for k in policies if kinds[k] == "learned"][:1]
    eps = {}
    for name in show:
        r = run_episode(env, policies[name], seed=episode_seed(0, 0), trace=trace, start=start, record=True)
        eps[name] = {"records": r.records, "exo": env.episode.exo, "trace": env.episode.trace_name}
    if eps:
        plots.plot_timeline(spec.id, eps, env.catalog, out / f"timeline-{spec.name}.png", env.period_s)


def _margins(policy) -> dict:
    """A heuristic's tunable parameters as they are set (the names of its ``PARAM_GRID``)."""
    return {k: getattr(policy, k) for k in getattr(policy, "PARAM_GRID", {})}


def bench_command(args) -> int:
    envs = args.env or [DEFAULT_ENV]
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    policies = parse_policies(args.policies)
    command = command_line("adascale-rl bench")
    t0 = time.perf_counter()
    out = Path(args.out)
    try:
        bench(envs, seeds=seeds, traces=args.traces, quick=args.quick, out=args.out, policies=policies,
              progress=not args.no_progress, command=command, env_kwargs=env_kwargs_from(args.env_kwargs),
              jobs=args.jobs if args.jobs is not None else usable_cpus())
    except OracleBeaten as exc:
        print(report.without_definitions((out / "results.md").read_text()))
        print(f"adascale-rl bench: error: {exc}", file=sys.stderr)
        return 1
    print(report.without_definitions((out / "results.md").read_text()))
    print(f"wrote {out / 'results.csv'}, {out / 'results.md'} and plots in {out} ({time.perf_counter() - t0:.0f} s)")
    return 0


def evaluate_command(args) -> int:
    spec = find_spec(args.env or DEFAULT_ENV)
    env_kwargs = env_kwargs_from(args.env_kwargs)
    seeds = check_seeds(args.seeds)
    env = _env(spec, args.split or "test", args.traces, env_kwargs)
    if args.split is not None and args.split != "all" and env.split != args.split:
        raise ValueError(f"--split {args.split}: {args.traces} has no {args.split} split (leave --split out to "
                        f"evaluate all of it, or give --split all)")
    margins = None
    name = args.policy
    shipped = learned_controllers(spec.name)
    if name not in BUILTIN and name in shipped and not Path(name).expanduser().exists():
        name = str(shipped[name])  # as bench and run read it: the environment's shipped controller of that name
    tunable = name in BUILTIN and (name == "best-fixed" or bool(_margins(BUILTIN[name]())))
    if tunable:
        if args.default_margins:
            policy = make_policy(name)
            margins = ("--default-margins: the largest variant (not the one the train split picks)"
                       if args.policy == "best-fixed" else f"default margins (--default-margins): {_margins(policy)}")
        else:
            if not args.no_progress:
                print(f"tuning {name}'s margins on the train split of {spec.id}", file=sys.stderr, flush=True)
            # as bench does, so that a name means the same policy (and gives the same numbers) in both
            policy, params = tuned_policy(name, AdaScaleEnv(spec, split="train", **env_kwargs))
            margins = f"margins tuned on the train split of {spec.id}, as bench tunes them: {params}"
    else:
        policy = make_policy(name)
    from tqdm.auto import tqdm

    # the oracles' planning and the learned controllers split by seed, as bench splits them; every other policy
    # carries its state from one episode to the next (random's generator) or is quick: it plays here
    path = None if name in BUILTIN else str(paths.resolve(name, "agents"))
    jobs = min(args.jobs if args.jobs is not None else usable_cpus(), len(seeds))
    by_seed = jobs > 1 and (name in SPLIT_BY_SEED or path is not None)
    episodes = env.evaluation_episodes()
    with tqdm(total=len(seeds) * len(episodes), desc=f"{args.policy} on {spec.name}", unit="ep",
              disable=args.no_progress, leave=False) as bar:
        if by_seed:
            bar.set_postfix_str(f"{jobs} processes")
            with _Workers(jobs) as workers:
                res = workers.play_seeds(spec, args.traces, env_kwargs, env.split, policy.name, path, seeds,
                                         episodes, bar)
        else:
            res = evaluate(env, policy, seeds, episodes, progress=bar.update)
    a = aggregate(res, seeds)
    print(f"{spec.id} split={env.split} policy={args.policy} episodes={int(a['episodes'])} seeds={args.seeds}"
          + (f" env_kwargs={env_kwargs}" if env_kwargs else ""))
    if margins:
        print(f"  {margins}")
    for n in data_notes(spec, env, args.traces):
        print(f"  {n.split(': ', 1)[1]}")
    mismatch = trained_with(policy, env_kwargs, spec)
    if mismatch:
        print(f"note: {mismatch}", file=sys.stderr)
    for k in ("return", "ci95_return", "effective_accuracy", "miss_rate", "mean_latency_ms", "energy_j",
              "oom_kills", "switches"):
        value = "n/a (one seed)" if k == "ci95_return" and math.isnan(a[k]) else f"{a[k]:.4f}"
        print(f"  {k:<20} {value}")
    return 0
