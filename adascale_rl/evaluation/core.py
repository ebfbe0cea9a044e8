"""Metrics of evaluated episodes: means and 95 % confidence intervals (the episodes are played by
:mod:`adascale_rl.policies.rollout`, re-exported here)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from adascale_rl.policies.rollout import (EpisodeResult, episode_seed, evaluate, mean_return,  # noqa: F401
                                          run_episode, tune)

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
