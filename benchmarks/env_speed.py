"""Single-environment steps per second of every AdaScale environment against CartPole-v1, in one run.

    python benchmarks/env_speed.py [--steps 20000] [--repeats 5]

Both are built with ``gymnasium.make`` (same wrappers: TimeLimit, OrderEnforcing,
PassiveEnvChecker) and stepped with random valid actions; resets are included.
Rounds alternate between the environments so background load hits them alike;
the ratio is taken per round and its median and range reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import gymnasium as gym
import numpy as np

import adascale_rl  # noqa: F401
from adascale_rl.environment.registration import registered_specs


def steps_per_s(env_id: str, steps: int, seed: int) -> float:
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, env.action_space.n, size=steps)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ids = [s.id for s in registered_specs()]
    print(f"machine: {platform.machine()}, {platform.python_version()}, gymnasium {gym.__version__}; "
          f"{args.steps} steps x {args.repeats} rounds")
    print(f"{'environment':<32} {'steps/s (median)':>17} {'CartPole ratio (median, min-max)':>34}")
    for env_id in ids:
        ratios, rates = [], []
        for r in range(args.repeats):
            cart = steps_per_s("CartPole-v1", args.steps, r)
            ours = steps_per_s(env_id, args.steps, r)
            rates.append(ours)
            ratios.append(ours / cart)
        print(f"{env_id:<32} {statistics.median(rates):>17,.0f} {statistics.median(ratios):>15.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
