"""Evaluate policies on identical traces and noise: episodes, metrics, tuning, aggregation."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.policies.base import Policy

METRICS = ("return", "effective_accuracy", "miss_rate", "mean_latency_ms", "energy_j", "oom_kills", "switches")

# t-distribution 97.5 % quantiles for small samples (df = n - 1); normal beyond the table
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    if df <= 0:
        return math.nan
    keys = [k for k in _T975 if k <= df]
    return _T975[max(keys)] if df <= 30 else 1.96


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95 % confidence interval of the mean (t-distribution)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan
    return float(t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


@dataclass
class EpisodeResult:
    policy: str
    seed: int
    trace: int
    start: int
    steps: int
    metrics: dict[str, float]
    actions: list[int] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    #: the evaluation seed this episode was played under (``seed`` is the environment's seed, one per episode)
    eval_seed: int | None = None


def episode_seed(seed: int, episode: int) -> int:
    """The environment seed of evaluation episode ``episode`` under evaluation seed ``seed``."""
    return 1_000_003 * (seed + 1) + episode


def run_episode(env: AdaScaleEnv, policy: Policy, *, seed: int, trace: int, start: int,
                record: bool = False, variant: Any = None) -> EpisodeResult:
    """One deterministic episode: ``env.reset(seed, options)``, then the policy until truncation."""
    options = {"trace": trace, "start": start}
    if variant is not None:
        options["variant"] = variant
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(env)
    ret = acc = miss = lat = energy = 0.0
    ooms = switches = steps = 0
    actions, records = [], []
    done = False
    while not done:
        a = int(policy.act(obs, info))
        obs, r, term, trunc, info = env.step(a)
        done = term or trunc
        ret += r
        acc += info["effective_accuracy"]
        miss += info["miss_rate"]
        lat += info["latency_ms"]
        energy += info["energy_mj"] / 1000.0
        ooms += int(info["oom"])
        switches += int(info["switched"])
        steps += 1
        if record:
            actions.append(a)
            records.append({k: v for k, v in info.items() if k != "action_mask"})
    metrics = {"return": ret, "effective_accuracy": acc / steps, "miss_rate": miss / steps,
               "mean_latency_ms": lat / steps, "energy_j": energy, "oom_kills": float(ooms),
               "switches": float(switches)}
    return EpisodeResult(getattr(policy, "name", type(policy).__name__), seed, trace, start, steps, metrics,
                         actions, records)


def evaluate(env: AdaScaleEnv, policy: Policy, seeds: Iterable[int], episodes: Sequence[tuple[int, int]] | None = None,
             progress: Callable[[int], None] | None = None) -> list[EpisodeResult]:
    """Every (seed, episode) pair; episodes default to the split's evaluation windows."""
    episodes = list(episodes if episodes is not None else env.evaluation_episodes())
    out = []
    for s in seeds:
        for k, (trace, start) in enumerate(episodes):
            r = run_episode(env, policy, seed=episode_seed(s, k), trace=trace, start=start)
            r.eval_seed = s
            out.append(r)
            if progress:
                progress(1)
    return out


def mean_return(results: Sequence[EpisodeResult]) -> float:
    return float(np.mean([r.metrics["return"] for r in results]))


def tune(env: AdaScaleEnv, make: Callable[..., Policy], grid: dict[str, list], *, seeds: Sequence[int] = (0,),
         max_episodes: int = 8) -> tuple[dict, float]:
    """Grid search of a policy's parameters on ``env`` (built on the train split); returns (best params, return)."""
    episodes = env.evaluation_episodes()
    if len(episodes) > max_episodes:
        idx = np.linspace(0, len(episodes) - 1, max_episodes).round().astype(int)
        episodes = [episodes[i] for i in sorted(set(idx))]
    keys = list(grid)
    best, best_r = {}, -math.inf
    for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        params = dict(zip(keys, values))
        r = mean_return(evaluate(env, make(**params), seeds, episodes))
        if r > best_r + 1e-12:
            best, best_r = params, r
    return best, best_r


def aggregate(results: Sequence[EpisodeResult], seeds: Sequence[int]) -> dict[str, float]:
    """Mean of each metric over all episodes; the CI of the return is over per-seed means (the mean
    return of each evaluation seed over its episodes: one value per seed, so n/a with one seed)."""
    out = {m: float(np.mean([r.metrics[m] for r in results])) for m in METRICS}
    per_episode_of_seed = {}
    for r in results:
        seed = r.eval_seed if r.eval_seed is not None else r.seed
        per_episode_of_seed.setdefault(seed, []).append(r.metrics["return"])
    seed_means = [float(np.mean(v)) for v in per_episode_of_seed.values()]
    out["ci95_return"] = ci95(seed_means)
    out["episodes"] = float(len(results))
    return out
