"""One folder per PPO run: checkpoints written atomically, config, validation.

::

    runs/Rpi4-Vision/ppo-seed0/
      config.yml               env, env kwargs, hyperparameters, seed, timesteps, versions,
                               command lines, wall time, training state (steps, best)
      model.zip                latest checkpoint (MaskablePPO)
      vecnormalize.pkl         its observation/reward normalisation statistics
      best_model.zip           best checkpoint by mean validation return
      best_vecnormalize.pkl    its normalisation statistics
      evaluations.csv          one row per validation: steps, return, effective accuracy, ...
      tensorboard/ppo_1/       TensorBoard events (rollout/, train/, env/, eval/)

Every file is written to a temporary file in the same folder and moved into
place with ``os.replace``, so a run killed at any moment leaves the previous
complete checkpoint, never half a file.
"""

from __future__ import annotations

import csv
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback

MODEL = "model.zip"
STATS = "vecnormalize.pkl"
BEST_MODEL = "best_model.zip"
BEST_STATS = "best_vecnormalize.pkl"
CONFIG = "config.yml"
EVALUATIONS = "evaluations.csv"
TENSORBOARD = "tensorboard"
TB_NAME = "ppo"

#: seed of the validation episodes: fixed, so every evaluation (and every run) meets the same futures
EVAL_SEED = 0
EVAL_FIELDS = ("timesteps", "mean_return", "std_return", "effective_accuracy", "miss_rate", "latency_ms",
               "energy_mj", "switches_per_episode", "ooms_per_episode", "episodes")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def versions() -> dict[str, str]:
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    import adascale_rl

    return {"adascale_rl": adascale_rl.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "torch": str(torch.__version__),
            "gymnasium": gymnasium.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


class RunFolder:
    """The files of one run and the atomic ways to write them."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return (self.path / CONFIG).exists()

    # ------------------------------------------------------------ config
    def read_config(self) -> dict[str, Any]:
        f = self.path / CONFIG
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        except OSError:
            raise FileNotFoundError(f"{self.path} is not a run folder: it has no readable {CONFIG}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{f} is not valid YAML ({exc})") from None
        if not isinstance(doc, dict) or "env" not in doc or "state" not in doc:
            raise ValueError(f"{f} is not a PPO run config (it lacks 'env' or 'state')")
        return doc

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
        atomic_write(self.path / CONFIG, lambda p: p.write_text(text, encoding="utf-8"))

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, model, vecnorm, best: bool = False) -> None:
        names = [(MODEL, STATS)] + ([(BEST_MODEL, BEST_STATS)] if best else [])
        for m, s in names:
            atomic_write(self.path / m, lambda p: model.save(str(p)))
            if vecnorm is not None:
                atomic_write(self.path / s, lambda p: vecnorm.save(str(p)))

    def append_evaluation(self, row: dict[str, Any]) -> None:
        f = self.path / EVALUATIONS
        old = f.read_text(encoding="utf-8") if f.exists() else ""

        def write(p: Path) -> None:
            with open(p, "w", newline="", encoding="utf-8") as fh:
                fh.write(old)
                w = csv.DictWriter(fh, fieldnames=EVAL_FIELDS, extrasaction="ignore")
                if not old:
                    w.writeheader()
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

        atomic_write(f, write)


# ---------------------------------------------------------------- validation

def pick_episodes(episodes: Sequence[tuple[int, int]], n: int | None) -> list[tuple[int, int]]:
    """At most ``n`` of the split's (trace, start) windows, evenly spread and in order."""
    episodes = list(episodes)
    if n is None or n >= len(episodes):
        return episodes
    idx = np.unique(np.linspace(0, len(episodes) - 1, max(n, 1)).round().astype(int))
    return [episodes[i] for i in idx]


def start_variants_for(budget: int | None, windows: int, variants: int) -> int:
    """How many start variants validation plays each of ``windows`` windows from, within ``budget`` episodes
    (a recipe's ``val_episodes``): as many as fit, at least 1 (the usual start), at most one per variant of the
    catalog; None: 1."""
    if budget is None:
        return 1
    return max(1, min(int(budget) // max(int(windows), 1), int(variants)))


def validation_episodes(env, windows: Sequence[tuple[int, int]], start_variants: int = 1) -> list[tuple[int, ...]]:
    """The episodes validation plays: each (trace, start) window of ``windows`` from ``start_variants``
    variants (:func:`start_variants_for`), in order. With 1, the windows as they are (each starts where the
    environment starts it: the most accurate variant that fits). With ``n > 1``, (trace, start, variant)
    triples: each window from that usual variant, then from ``n - 1`` variants spread over the catalog
    ordered by latency (the fastest, then evenly up to, not including, the slowest, which is usually the
    most accurate; with ``n`` = the catalog's size, every variant but the slowest), so that a checkpoint
    that only keeps whatever it starts with scores what it would on a device whose app starts elsewhere (a
    live app runs what the controller's first decision picked)."""
    windows = [tuple(w) for w in windows]
    n = int(start_variants)
    env = getattr(env, "unwrapped", env)
    if not 1 <= n <= len(env.catalog):
        raise ValueError(f"start_variants must be 1 to the catalog's {len(env.catalog)} variants, not {start_variants!r}")
    if n == 1:
        return windows
    lat = [v.latency_ms for v in env.catalog.variants]
    order = sorted(range(len(lat)), key=lambda i: (lat[i], i))
    spread = [order[i * (len(order) - 1) // (n - 1)] for i in range(n - 1)]
    out: list[tuple[int, ...]] = []
    for trace, start in windows:
        usual = env.default_variant(env.exo[trace][start].mem_avail_mb)
        out.extend((trace, start, v) for v in [usual, *spread])
    return out


#: what a validation episode's items are, in order: the reset options they become
EPISODE_KEYS = ("trace", "start", "variant")


def _reset_options(episode: Sequence[int]) -> dict[str, int]:
    """A validation episode's reset options: (trace, start) or (trace, start, variant)."""
    return {k: int(v) for k, v in zip(EPISODE_KEYS, episode)}


def run_episodes(act: Callable[[np.ndarray, dict], int], env, episodes: Sequence[tuple[int, ...]],
                 seed: int = EVAL_SEED, on_reset: Callable[[Any], None] | None = None) -> dict[str, float]:
    """Play ``act`` on the given episodes, (trace, start) windows or (trace, start, start variant)
    triples (:func:`validation_episodes`), episode j reset with ``seed + j``; return mean metrics."""
    returns, n_steps = [], 0
    sums = {"effective_accuracy": 0.0, "miss_rate": 0.0, "latency_ms": 0.0, "energy_mj": 0.0}
    switches = ooms = 0
    for j, episode in enumerate(episodes):
        obs, info = env.reset(seed=seed + j, options=_reset_options(episode))
        if on_reset is not None:
            on_reset(env.unwrapped)
        ret, done = 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(act(obs, info))
            ret += float(r)
            n_steps += 1
            for k in sums:
                sums[k] += float(info[k])
            switches += bool(info["switched"])
            ooms += bool(info["oom"])
            done = term or trunc
        returns.append(ret)
    n_ep = max(len(returns), 1)
    out = {"mean_return": float(np.mean(returns)) if returns else float("nan"),
           "std_return": float(np.std(returns)) if returns else float("nan")}
    out.update({k: v / max(n_steps, 1) for k, v in sums.items()})
    out.update({"switches_per_episode": switches / n_ep, "ooms_per_episode": ooms / n_ep, "episodes": len(returns)})
    return out


def run_episodes_vec(model, vecnorm, venv, episodes: Sequence[tuple[int, ...]], seed: int = EVAL_SEED) -> dict[str, float]:
    """:func:`run_episodes` of ``model``'s deterministic masked actions with every window at once, in a
    vector environment (:class:`~adascale_rl.environment.vector.AdaScaleVectorEnv`, one sub-environment per
    window): window j in sub-environment j, reset with ``seed + j`` as there. The same episodes, and the
    metrics summed in :func:`run_episodes`'s order, so the numbers are its numbers (to the vector
    environment's 1e-9; ``tests/policies/test_ppo_vector.py``)."""
    n = len(episodes)
    if venv.num_envs != n:
        raise ValueError(f"the validation vector environment has {venv.num_envs} sub-environments for {n} windows")
    if len({len(e) for e in episodes}) > 1:
        raise ValueError("validation episodes must all be (trace, start) windows or all (trace, start, variant) triples")
    options = {k: [e[i] for e in episodes] for i, k in enumerate(EPISODE_KEYS[:len(episodes[0])])}
    obs, _ = venv.reset(seed=[seed + j for j in range(n)], options=options)
    keys = ("effective_accuracy", "miss_rate", "latency_ms", "energy_mj")
    rewards, values, counted = [], {k: [] for k in keys}, []
    switched, oom = [], []
    playing = np.ones(n, dtype=bool)
    while playing.any():
        o = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
        actions, _ = model.predict(o, deterministic=True, action_masks=venv.action_masks())
        obs, r, term, trunc, info = venv.step(actions)
        counted.append(playing.copy())
        rewards.append(r)
        for k in keys:
            values[k].append(info[k])
        switched.append(info["switched"])
        oom.append(info["oom"])
        playing &= ~(term | trunc)
    steps = np.array(counted)                    # (T, n): the steps each window played
    returns = []
    for j in range(n):  # each episode's return summed step by step, as run_episodes does
        ret = 0.0
        for x in np.array(rewards)[steps[:, j], j].tolist():
            ret += x
        returns.append(ret)
    out = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
    n_steps = int(steps.sum())
    for k in keys:  # one running sum over the episodes in order, then their steps in order
        total = 0.0
        for x in np.array(values[k]).T[steps.T].tolist():
            total += x
        out[k] = total / max(n_steps, 1)
    out.update({"switches_per_episode": int(np.array(switched)[steps].sum()) / n,
                "ooms_per_episode": int(np.array(oom)[steps].sum()) / n, "episodes": n})
    return out


def model_actor(model, vecnorm) -> Callable[[np.ndarray, dict], int]:
    """Deterministic masked action of ``model`` on raw observations (normalised with ``vecnorm``)."""

    def act(obs: np.ndarray, info: dict) -> int:
        o = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
        mask = info.get("action_mask")
        a, _ = model.predict(o, deterministic=True, action_masks=None if mask is None else np.asarray(mask, bool))
        return int(a)

    return act


class ValidationCallback(BaseCallback):
    """Before a fresh run's first update, every ``eval_freq`` steps (at a rollout boundary)
    and at the end: evaluate on the validation windows, log ``eval/*``, checkpoint
    atomically, keep the best. ``eval_env`` is a single environment (the windows one by one,
    :func:`run_episodes`) or a vector environment with one sub-environment per window (all at
    once, :func:`run_episodes_vec`): the same numbers."""

    def __init__(self, run: RunFolder, eval_env, episodes: Sequence[tuple[int, ...]], eval_freq: int,
                 on_checkpoint: Callable[[int, dict | None, bool], None], best: float = -np.inf,
                 last_eval: int = 0, verbose: int = 0):
        super().__init__(verbose)
        self.run = run
        self.eval_env = eval_env
        self.episodes = list(episodes)
        self.eval_freq = int(eval_freq)
        self.on_checkpoint = on_checkpoint
        self.best = float(best)
        self.last_eval = int(last_eval)
        self.history: list[dict[str, float]] = []

    def _on_training_start(self) -> None:
        # a fresh run's untrained policy is a candidate too: with a prior (PlannerPrior) it is
        # already a soft planner, and the run should never ship something worse on validation
        if self.num_timesteps == 0 and self.last_eval == 0:
            self.evaluate()

    def _on_rollout_start(self) -> None:
        # the model here has been updated with every step counted in num_timesteps
        if self.num_timesteps - self.last_eval >= self.eval_freq:
            self.evaluate()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps != self.last_eval:
            self.evaluate()

    def evaluate(self) -> dict[str, float]:
        t0 = time.perf_counter()
        vecnorm = self.model.get_vec_normalize_env()
        if getattr(self.eval_env, "num_envs", None) is not None:  # a vector environment: every window at once
            metrics = run_episodes_vec(self.model, vecnorm, self.eval_env, self.episodes)
        else:
            metrics = run_episodes(model_actor(self.model, vecnorm), self.eval_env, self.episodes)
        for k, v in metrics.items():
            self.logger.record(f"eval/{k}", v)
        self.logger.record("time/eval_s", time.perf_counter() - t0)
        self.logger.dump(self.num_timesteps)
        is_best = metrics["mean_return"] > self.best
        if is_best:
            self.best = metrics["mean_return"]
        self.run.save_checkpoint(self.model, vecnorm, best=is_best)
        self.run.append_evaluation({"timesteps": self.num_timesteps, **metrics})
        self.last_eval = self.num_timesteps
        self.history.append({"timesteps": self.num_timesteps, **metrics})
        self.on_checkpoint(self.num_timesteps, metrics, is_best)
        if self.verbose:
            print(f"validation at {self.num_timesteps} steps: return {metrics['mean_return']:.3f}"
                  f"{' (best)' if is_best else ''}", file=sys.stderr)
        return metrics


class TrainingProgress(BaseCallback):
    """A progress bar over the run's steps (stderr), in place of SB3's.

    Its clock runs through the validations, and its rate is the average since it started
    (not a recent window), so the time left counts the validation pauses too. The time
    left is shown only once a whole validation interval (``eval_freq`` steps, a
    validation included) has passed: before that it would extrapolate from rollouts
    alone and promise too little.
    """

    FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}"
    NO_ETA = FORMAT + "]"
    WITH_ETA = FORMAT + " elapsed, {remaining} left]"

    def __init__(self, total: int, eval_freq: int, verbose: int = 0):
        super().__init__(verbose)
        self.total = int(total)
        self.eval_freq = int(eval_freq)
        self.bar = None
        self.start = 0
        self.eta = False

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self.start = int(self.model.num_timesteps)
        self.bar = tqdm(total=self.total, initial=self.start, unit="step", smoothing=0, file=sys.stderr,
                        dynamic_ncols=True, bar_format=self.NO_ETA)

    def _on_step(self) -> bool:
        steps = int(self.model.num_timesteps)
        if not self.eta and steps - self.start > self.eval_freq:
            self.eta = True
            self.bar.bar_format = self.WITH_ETA
        self.bar.update(steps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
