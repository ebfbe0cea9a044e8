"""Wall time of ``adascale-rl bench`` in one process against worker processes (``--jobs``), in one run.

    python benchmarks/bench_jobs.py [--env AdaScale/Rpi4-Vision-v4] [--jobs N] [--rounds 1] [--quick]

Each round runs the same ``adascale-rl bench --env ENV --no-progress`` twice in fresh processes, once with
``--jobs 1`` (every policy in the one process) and once with ``--jobs N`` (default: the CPUs this process may
use); the order alternates between rounds so that background load hits both alike. It prints each run's wall
time, the per-round ratio, and whether the two runs' ``results.csv`` are byte for byte the same (they must be:
every episode is played by the same code from the same seed, whichever process plays it). The machine and its
load average before and after are printed: the times mean something on a quiet machine only.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adascale_rl._cpus import usable_cpus
from adascale_rl.context.recorder import cpu_model


def run(env: str, jobs: int, out: Path, quick: bool) -> float:
    cmd = [sys.executable, "-m", "adascale_rl.cli", "bench", "--env", env, "--jobs", str(jobs), "--out", str(out),
           "--no-progress", *(["--quick"] if quick else [])]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"bench --jobs {jobs} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return took


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="AdaScale/Rpi4-Vision-v4")
    ap.add_argument("--jobs", type=int, default=usable_cpus(), help="worker processes (default: the usable CPUs)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="bench --quick (a smoke run of this script)")
    args = ap.parse_args()
    if args.jobs < 2 or args.rounds < 1:
        ap.error("--jobs must be at least 2 (it is compared with 1) and --rounds at least 1")
    print(f"machine: {cpu_model() or platform.machine()}, {os.cpu_count()} CPUs ({usable_cpus()} usable), "
          f"Python {platform.python_version()}; load average {load()} (1, 5, 15 min) at the start")
    print(f"adascale-rl bench --env {args.env}{' --quick' if args.quick else ''}: --jobs 1 against --jobs {args.jobs}")
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        for k in range(args.rounds):
            order = [1, args.jobs] if k % 2 == 0 else [args.jobs, 1]
            times = {}
            for jobs in order:
                times[jobs] = run(args.env, jobs, Path(tmp) / f"r{k}-j{jobs}", args.quick)
            same = ((Path(tmp) / f"r{k}-j1" / "results.csv").read_bytes()
                    == (Path(tmp) / f"r{k}-j{args.jobs}" / "results.csv").read_bytes())
            print(f"round {k + 1}: --jobs 1 {times[1]:.1f} s, --jobs {args.jobs} {times[args.jobs]:.1f} s, "
                  f"speed-up {times[1] / times[args.jobs]:.2f}x; results.csv identical: {'yes' if same else 'NO'}")
            if not same:
                sys.exit("the two runs' results differ: a policy carries state across episodes or processes")
    print(f"load average {load()} (1, 5, 15 min) at the end")


if __name__ == "__main__":
    main()
