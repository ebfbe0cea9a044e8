"""Steps per second of the AdaScale environments against CartPole-v1, single and vectorised, in one run.

    python benchmarks/env_speed.py [--steps 20000] [--vec-steps 600] [--sizes 64 1024] [--repeats 5]

1. One environment: every AdaScale id against CartPole-v1, both built with ``gymnasium.make``
   (same wrappers: TimeLimit, OrderEnforcing, PassiveEnvChecker), ``--steps`` random actions,
   resets included.
2. The native vector environments at each ``--sizes`` N: every AdaScale id with
   ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``
   (:class:`adascale_rl.environment.vector.AdaScaleVectorEnv`) against Gymnasium's own CartPole vector
   environment (``CartPoleVectorEnv``, the same call), ``--vec-steps`` steps of N random actions
   (two 300-interval windows by default, so every sub-environment resets), autoresets included;
   environment steps per second = N x steps / seconds.

Actions are drawn before the clock starts (uniform over the action space: switches, masked ones
included, happen as often as keeps). Rounds alternate between the environments so background load
hits them alike; the ratio is taken per round and its median and range reported. The load average
(``os.getloadavg``) before and after is printed: the numbers mean something on a quiet machine only.
"""

from __future__ import annotations

import argparse
import os
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


def vector_steps_per_s(env_id: str, n: int, steps: int, seed: int) -> float:
    """Environment steps per second (n x steps / seconds) of the native vector environment of ``env_id``."""
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    actions = np.random.default_rng(seed).integers(0, env.single_action_space.n, size=(steps, n))
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    rate = n * steps / (time.perf_counter() - t0)
    env.close()
    return rate


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000, help="single-environment steps per round")
    ap.add_argument("--vec-steps", type=int, default=600, help="vector steps per round (each of N environments)")
    ap.add_argument("--cartpole-vec-steps", type=int, default=3000,
                    help="vector steps per round of CartPole's (faster: more steps for a stable clock)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 1024], help="vector sizes N")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--envs", nargs="*", default=None, help="AdaScale ids (default: every registered one)")
    args = ap.parse_args()
    ids = args.envs or [s.id for s in registered_specs()]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, gymnasium {gym.__version__}; load average {load()} (1, 5, 15 min) at the start")

    print(f"\none environment: {args.steps} steps x {args.repeats} rounds")
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

    print(f"\nvector environments (vector_entry_point): {args.vec_steps} steps of N (CartPole: "
          f"{args.cartpole_vec_steps}) x {args.repeats} rounds; environment steps per second")
    print(f"{'environment':<32} {'N':>5} {'steps/s (median)':>17} {'CartPole vec steps/s':>21} "
          f"{'ratio (median, min-max)':>25}")
    for n in args.sizes:
        for env_id in ids:
            ratios, rates, carts = [], [], []
            for r in range(args.repeats):
                cart = vector_steps_per_s("CartPole-v1", n, args.cartpole_vec_steps, r)
                ours = vector_steps_per_s(env_id, n, args.vec_steps, r)
                rates.append(ours)
                carts.append(cart)
                ratios.append(ours / cart)
            print(f"{env_id:<32} {n:>5} {statistics.median(rates):>17,.0f} {statistics.median(carts):>21,.0f} "
                  f"{statistics.median(ratios):>11.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
    print(f"\nload average {load()} (1, 5, 15 min) at the end")


if __name__ == "__main__":
    main()
