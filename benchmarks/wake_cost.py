"""What a request pays for the time since the model last ran: back to back, after a sleep, after a busy wait.

    python benchmarks/wake_cost.py [--env Local-Digits] [--variants ID ...] [--gaps 2 5 15] [--calls 30]
                                   [--rounds 2] [--threads 1]

Serves each variant of a profiled environment (``adascale-rl profile``'s cached TorchScript files, as
``adascale-rl run`` loads them) in this process: back to back, then with a gap of ``--gaps`` ms before every
call, the thread either asleep (``time.sleep``, as the live loop waits for its next request) or busy in a
Python loop that touches nothing else (a spin). It prints each variant's mean service per mode and the excess
over back to back (mean over ``--rounds`` interleaved rounds, and their range).

The simulator calls this excess the wake-up cost (``idle_wake_ms + idle_wake_per_ms x service``, scaled by
``1 - exp(-sleep / idle_sleep_ms)``; ``adascale_rl/device/model.py``). If a spin gap costs what a sleep gap
costs, the cost is not the core's idle state but the time the model's data spent out of use (caches and TLBs
taken by whatever else runs on the host), and it moves with the host rather than with the app's sleep. The
machine should be quiet (no other job): the script measures the host, not a load.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adascale_rl.elastic.calibrate import pick_variants  # noqa: E402
from adascale_rl.evaluation.live import LiveSetup  # noqa: E402


def serve(model, xs, calls: int, gap_ms: float, mode: str) -> float:
    """Mean service (ms) of ``calls`` requests, each after a gap of ``gap_ms`` spent as ``mode`` says."""
    import torch

    clock, out = time.perf_counter, []
    with torch.inference_mode():
        model(xs[0])  # the variant's first call after the others ran: not counted
        for i in range(calls):
            if mode == "sleep":
                time.sleep(gap_ms / 1000.0)
            elif mode == "spin":
                end = clock() + gap_ms / 1000.0
                while clock() < end:
                    pass
            a = clock()
            int(model(xs[i % len(xs)]).argmax())
            out.append((clock() - a) * 1000.0)
    return float(np.mean(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="Local-Digits", help="a profiled environment (default Local-Digits)")
    ap.add_argument("--variants", nargs="+", default=None, metavar="ID",
                    help="variants to time (default: 5 spread over the catalog's latency range)")
    ap.add_argument("--gaps", nargs="+", type=float, default=[2.0, 5.0, 15.0], metavar="MS",
                    help="gaps before each call in ms (default 2 5 15; 15 is a 60 Hz app's sleep)")
    ap.add_argument("--calls", type=int, default=30, help="calls per variant, mode and gap (default 30)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as profiled)")
    args = ap.parse_args(argv)
    if args.calls < 3 or args.rounds < 1 or not all(g > 0 for g in args.gaps):
        ap.error("--calls must be at least 3, --rounds at least 1 and every gap positive")

    setup = LiveSetup(args.env, threads=args.threads)
    latency = {v.id: float(v.latency_ms) for v in setup.catalog.variants}
    chosen = args.variants or pick_variants(latency, 5)
    unknown = [v for v in chosen if v not in latency]
    if unknown:
        ap.error(f"not variants of {args.env}: {', '.join(unknown)}")
    modes = [("b2b", 0.0)] + [(m, g) for g in args.gaps for m in ("sleep", "spin")]
    load0 = os.getloadavg()
    t0 = time.strftime("%Y-%m-%d %H:%M")
    res = {(v, m, g): [] for v in chosen for m, g in modes}
    for _ in range(args.rounds):
        for v in chosen:
            for m, g in modes:
                res[v, m, g].append(serve(setup.models[v], setup.xs, args.calls, g, m))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
          f"Python {platform.python_version()}; {t0}; load average before {load0[0]:.2f}, after "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{args.env}: {args.calls} calls per cell, {args.rounds} rounds, {args.threads} torch thread(s); "
          f"service in ms (mean over rounds [range]); excess = mode - back to back\n")
    head = "| variant | catalog ms | back to back |" + "".join(
        f" {m} {g:g} ms: excess |" for g in args.gaps for m in ("sleep", "spin"))
    print(head)
    print("|" + "---|" * (3 + 2 * len(args.gaps)))
    for v in chosen:
        b = np.array(res[v, "b2b", 0.0])
        cells = [f"{b.mean():.3f}"]
        for g in args.gaps:
            for m in ("sleep", "spin"):
                e = np.array(res[v, m, g]) - b
                cells.append(f"{e.mean():+.3f} [{e.min():+.2f}, {e.max():+.2f}]")
        print(f"| {v} | {latency[v]:.3f} | " + " | ".join(cells) + " |")
    spin = np.mean([np.mean(res[v, "spin", g]) - np.mean(res[v, "b2b", 0.0]) for v in chosen for g in args.gaps])
    sleep = np.mean([np.mean(res[v, "sleep", g]) - np.mean(res[v, "b2b", 0.0]) for v in chosen for g in args.gaps])
    print(f"\nmean excess over every variant and gap: asleep {sleep:.3f} ms, busy (spin) {spin:.3f} ms "
          f"(spin / sleep {spin / sleep if sleep > 0 else float('nan'):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
