"""Where the gap between the best heuristic and the clairvoyant oracle comes from.

    python benchmarks/oracle_gap.py [--env NAME ...] [--seeds 3] [--samples 16] [--env-kwargs K=V ...]

On each environment's test split (same windows and noise for every policy, evaluation
seeds 0..N-1) it scores three policies:

- ``planner``: the reward-aware planner heuristic, its margins tuned on the train split
  as ``adascale-rl bench`` tunes them; it sees only the past;
- ``context-oracle``: knows the whole future trace and the app's modes, not the latency
  noise; plans for ``--samples`` fresh noise draws (sample-average approximation) with the
  oracle's dynamic programme and plays the plan open loop;
- ``oracle``: knows the future trace and the episode's noise draws too.

By default the latency noise is independent from one interval to the next, so nothing a
deployed controller can observe predicts it: oracle minus context-oracle is the part of the
gap no controller can learn. Context-oracle minus planner is what foresight of the context
is worth, an upper bound on what a learned controller that anticipates the context could
add (the context oracle is open loop, so this bound is loose in its favour only through
that).

``--env-kwargs`` passes environment arguments to the train and test environments alike
(as ``adascale-rl train --env-kwargs`` does), for example ``spike_spell_s=8`` for latency
spikes that persist 8 s on average: then part of the noise is predictable from the
latencies a controller observes, and the planner's feedback correction can use it.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def main(argv=None) -> int:
    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.environment.registration import registered_specs
    from adascale_rl.evaluation.bench import env_kwargs_from, tuned_policy
    from adascale_rl.evaluation.core import aggregate, evaluate
    from adascale_rl.policies.oracle import ContextOraclePolicy, OraclePolicy

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=None, help="spec name (default: every registered environment)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=16, help="noise draws the context oracle plans for")
    ap.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment arguments for the train and test environments (e.g. spike_spell_s=8)")
    a = ap.parse_args(argv)
    if a.seeds < 1 or a.samples < 1:
        ap.error("--seeds and --samples must be >= 1")
    try:
        env_kwargs = env_kwargs_from(a.env_kwargs)
    except ValueError as exc:
        ap.error(str(exc))

    specs = [s for s in registered_specs() if a.env is None or s.name in a.env or s.id in a.env]
    if not specs:
        ap.error(f"no environment named {a.env}")
    seeds = list(range(a.seeds))
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; test split, seeds {seeds}, "
          f"context oracle planning for {a.samples} noise draws; environment arguments {env_kwargs or 'none'}")
    print(f"{'environment':20s} {'planner':>16s} {'context-oracle':>16s} {'oracle':>16s}   "
          f"{'planner/oracle':>14s} {'ctx/oracle':>10s}  seconds")
    for spec in specs:
        try:
            test, train = (AdaScaleEnv(spec, split=split, **env_kwargs) for split in ("test", "train"))
        except ValueError as exc:  # a bad value in --env-kwargs
            ap.error(str(exc))
        planner, params = tuned_policy("planner", train)
        episodes = test.evaluation_episodes()
        t0 = time.perf_counter()
        got = {}
        for name, policy in (("planner", planner), ("context-oracle", ContextOraclePolicy(samples=a.samples)),
                             ("oracle", OraclePolicy())):
            got[name] = aggregate(evaluate(test, policy, seeds, episodes), seeds)
        cell = {k: f"{v['return']:.2f} ± {v['ci95_return']:.2f}" if len(seeds) > 1 else f"{v['return']:.2f}"
                for k, v in got.items()}  # no interval from one seed
        o = got["oracle"]["return"]
        print(f"{spec.name:20s} {cell['planner']:>16s} {cell['context-oracle']:>16s} {cell['oracle']:>16s}   "
              f"{got['planner']['return'] / o:14.3f} {got['context-oracle']['return'] / o:10.3f}  "
              f"{time.perf_counter() - t0:.0f}   (planner {params})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
