"""Playing policies on environments: one episode, a set of episodes, and tuning a policy's margins.

Below the policies that use it (the learned controller's prior tunes its margins with
:func:`tune`) and the evaluation harness that aggregates what it returns.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from adascale_rl.policies.base import Policy


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


def run_episode(env: Any, policy: Policy, *, seed: int, trace: int, start: int,
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


def evaluate(env: Any, policy: Policy, seeds: Iterable[int], episodes: Sequence[tuple[int, int]] | None = None,
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


def tune(env: Any, make: Callable[..., Policy], grid: dict[str, list], *, seeds: Sequence[int] = (0,),
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
