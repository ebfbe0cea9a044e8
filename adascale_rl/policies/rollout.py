"""Playing policies on environments: one episode, a set of episodes, and tuning a policy's margins.

Below the policies that use it (the learned controller's prior tunes its margins with
:func:`tune`) and the evaluation harness that aggregates what it returns.
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager, nullcontext
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


class _Tally:
    """What an episode adds up, step by step: its return and the sums behind :class:`EpisodeResult`'s metrics."""

    __slots__ = ("ret", "acc", "miss", "lat", "energy", "ooms", "switches", "steps")

    def __init__(self):
        self.ret = self.acc = self.miss = self.lat = self.energy = 0.0
        self.ooms = self.switches = self.steps = 0

    def add(self, r: float, info: dict) -> None:
        self.ret += r
        self.acc += info["effective_accuracy"]
        self.miss += info["miss_rate"]
        self.lat += info["latency_ms"]
        self.energy += info["energy_mj"] / 1000.0
        self.ooms += int(info["oom"])
        self.switches += int(info["switched"])
        self.steps += 1

    def metrics(self) -> dict[str, float]:
        n = self.steps
        return {"return": self.ret, "effective_accuracy": self.acc / n, "miss_rate": self.miss / n,
                "mean_latency_ms": self.lat / n, "energy_j": self.energy, "oom_kills": float(self.ooms),
                "switches": float(self.switches)}


def _name(policy: Any) -> str:
    return getattr(policy, "name", type(policy).__name__)


def run_episode(env: Any, policy: Policy, *, seed: int, trace: int, start: int,
                record: bool = False, variant: Any = None) -> EpisodeResult:
    """One deterministic episode: ``env.reset(seed, options)``, then the policy until truncation."""
    options = {"trace": trace, "start": start}
    if variant is not None:
        options["variant"] = variant
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(env)
    tally = _Tally()
    actions, records = [], []
    done = False
    while not done:
        a = int(policy.act(obs, info))
        obs, r, term, trunc, info = env.step(a)
        done = term or trunc
        tally.add(r, info)
        if record:
            actions.append(a)
            records.append({k: v for k, v in info.items() if k != "action_mask"})
    return EpisodeResult(_name(policy), seed, trace, start, tally.steps, tally.metrics(), actions, records)


def batched(policy: Any, env: Any) -> bool:
    """Whether :func:`evaluate` plays ``policy`` on ``env``'s episodes side by side: the policy decides for many
    observations in one call (``act_batch``) and the environment forks independent copies of itself."""
    return callable(getattr(policy, "act_batch", None)) and callable(getattr(env, "fork", None))


def _lockstep(envs: list, policy: Any, seed: int, episodes: Sequence[tuple[int, int]],
              progress: Callable[[int], None] | None) -> list[EpisodeResult]:
    """Every episode of one evaluation seed at once, one environment (a fork) each: every step, one
    ``policy.act_batch`` over the episodes still running, then each steps. An episode's environment, seed, windows
    and actions are those :func:`run_episode` gives it, so are its results wherever the batched decisions are
    the policy's one-by-one decisions."""
    obs, infos = [], []
    for k, (env, (trace, start)) in enumerate(zip(envs, episodes)):
        o, i = env.reset(seed=episode_seed(seed, k), options={"trace": trace, "start": start})
        obs.append(o)
        infos.append(i)
    policy.reset(envs[0])
    tallies = [_Tally() for _ in episodes]
    running = list(range(len(episodes)))
    while running:
        actions = policy.act_batch(np.stack([obs[j] for j in running]), [infos[j] for j in running])
        still = []
        for j, a in zip(running, actions):
            obs[j], r, term, trunc, infos[j] = envs[j].step(int(a))
            tallies[j].add(r, infos[j])
            if term or trunc:
                if progress:
                    progress(1)
            else:
                still.append(j)
        running = still
    name = _name(policy)
    return [EpisodeResult(name, episode_seed(seed, k), trace, start, t.steps, t.metrics(), eval_seed=seed)
            for k, ((trace, start), t) in enumerate(zip(episodes, tallies))]


@contextmanager
def torch_threads(n: int = 1):
    """torch's intra-op threads at ``n`` for the block, restored after. A learned controller's forward (small MLPs,
    and the prior's many small operations) is no faster on more threads, and several times slower where other
    work shares the cores (``python benchmarks/evaluate_batch.py --compare threads``): :func:`evaluate` plays a
    learned policy on one, and ``train`` learns on one."""
    import torch as th

    prev = th.get_num_threads()
    if prev == n:
        yield
        return
    th.set_num_threads(n)
    try:
        yield
    finally:
        th.set_num_threads(prev)


def evaluate(env: Any, policy: Policy, seeds: Iterable[int], episodes: Sequence[tuple[int, int]] | None = None,
             progress: Callable[[int], None] | None = None, batch: bool = True,
             threads: int | None = 1) -> list[EpisodeResult]:
    """Every (seed, episode) pair; episodes default to the split's evaluation windows.

    A policy that decides in batches (``act_batch``, the learned controllers) plays a seed's episodes side by
    side on forks of ``env`` (:func:`batched`; ``batch=False``: one after the other). Each episode is the same
    either way; only the network's arithmetic on a batch may round differently in the last float32 bits. A learned
    policy plays on ``threads`` torch threads (:func:`torch_threads`; None: as many as torch has now).
    """
    hold = torch_threads(threads) if threads is not None and getattr(policy, "kind", None) == "learned" \
        else nullcontext()
    with hold:
        return _evaluate(env, policy, seeds, episodes, progress, batch)


def _evaluate(env, policy, seeds, episodes, progress, batch) -> list[EpisodeResult]:
    episodes = list(episodes if episodes is not None else env.evaluation_episodes())
    out = []
    if batch and len(episodes) > 1 and batched(policy, env):
        envs = [env] + [env.fork() for _ in episodes[1:]]
        for s in seeds:
            out.extend(_lockstep(envs, policy, s, episodes, progress))
        return out
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
