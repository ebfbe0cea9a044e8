"""The learned controllers' evaluation: episodes side by side (one batched forward per step) against one after
the other, or on one torch thread against the CPUs', in one run, with the same results.

    python benchmarks/evaluate_batch.py [--envs Rpi4-Vision ...] [--recipes ppo ppo-noprior] [--seeds 5]
    python benchmarks/evaluate_batch.py --compare threads [--threads N]

For each shipped environment and controller (``agents/<env>/<recipe>/``) it plays the test split's episodes
for ``--seeds`` evaluation seeds with :func:`adascale_rl.policies.rollout.evaluate` twice in this process, one
torch thread: side by side (the default: every episode of a seed on its own fork of the environment, one
``act_batch`` per step) and one after the other (``batch=False``: one forward per observation, as before),
the order alternating between controllers. It prints both wall times, their ratio, and whether every
episode's results are identical (the batched forward may round the last float32 bits of a logit
differently; the results are identical as long as no decision changes). The machine and the load average
before and after are printed: the times mean something on a quiet machine only.

``--compare threads`` plays the episodes side by side both times, once on one torch thread and once on
``--threads`` (default: the CPUs this process may use, torch's own default), the order alternating (``--busy N``
busy-loop processes beside, as other work on the machine): what
``evaluate`` and an in-process ``bench --jobs 1`` gain by holding one thread
(``threads=`` of :func:`adascale_rl.policies.rollout.evaluate`).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import torch

import adascale_rl  # noqa: F401  (registers the ids)
from adascale_rl import paths
from adascale_rl.context.recorder import cpu_model
from adascale_rl.environment.spec import VERSION
from adascale_rl._cpus import usable_cpus
from adascale_rl.context.load import BusyProcesses
from adascale_rl.policies.ppo import load_policy
from adascale_rl.policies.rollout import evaluate

ENVS = ("Rpi4-Vision", "Pixel4-Vision", "JetsonNano-Vision", "Local-Digits")


def _key(results):
    return [(r.seed, r.eval_seed, r.trace, r.start, r.steps, r.metrics) for r in results]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS))
    ap.add_argument("--recipes", nargs="+", default=["ppo", "ppo-noprior"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--compare", choices=("batch", "threads"), default="batch",
                    help="side by side against one by one (default), or one torch thread against --threads")
    ap.add_argument("--threads", type=int, default=None, help="with --compare threads (default: usable CPUs)")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="busy-loop processes running beside the timing (other work sharing the cores; default 0)")
    args = ap.parse_args(argv)
    if args.busy < 0:
        ap.error(f"--busy {args.busy}: give 0 or more")
    many = args.threads if args.threads is not None else usable_cpus()
    if many < 1:
        ap.error(f"--threads {many}: give at least 1")
    torch.set_num_threads(1)
    load = lambda: ", ".join(f"{x:.2f}" for x in os.getloadavg())  # noqa: E731
    threads = "1 torch thread" if args.compare == "batch" else f"1 torch thread against {many}"
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}, Python "
          f"{platform.python_version()}, torch {torch.__version__}, {threads}, {args.busy} busy process(es) "
          f"beside; load average before: {load()}")
    with BusyProcesses(args.busy):
        all_same = _compare(args, many)
    print(f"load average after: {load()}")
    return 0 if all_same else 1


def _compare(args, many: int) -> bool:
    first, second = ("side by side", "one by one") if args.compare == "batch" else ("1 thread", f"{many} threads")
    print(f"{'environment':<20} {'controller':<12} {'episodes':>8} {first:>13} {second:>11} {'ratio':>6}  identical")
    all_same = True
    for i, name in enumerate(args.envs):
        for j, recipe in enumerate(args.recipes):
            policy = load_policy(paths.agents_dir() / name / recipe)
            env = gym.make(f"AdaScale/{name}-v{VERSION}", split="test").unwrapped
            times, results = {}, {}
            order = (True, False) if (i + j) % 2 == 0 else (False, True)
            for batch in order:  # threads: True is one thread, False --threads (batched both times)
                n = 1 if args.compare == "batch" or batch else many
                t0 = time.perf_counter()
                results[batch] = evaluate(env, policy, range(args.seeds),
                                          batch=batch if args.compare == "batch" else True, threads=n)
                times[batch] = time.perf_counter() - t0
            same = _key(results[True]) == _key(results[False])
            all_same &= same
            print(f"{name:<20} {recipe:<12} {len(results[True]):>8} {times[True]:>12.1f}s {times[False]:>10.1f}s "
                  f"{times[False] / times[True]:>5.1f}x  {'yes' if same else 'NO'}", flush=True)
    return all_same


if __name__ == "__main__":
    raise SystemExit(main())
