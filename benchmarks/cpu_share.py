"""How this machine's scheduler splits the cores between an app and busy processes: back to back and asleep between requests.

    python benchmarks/cpu_share.py [--busy 2 4] [--work-ms 2] [--periods 2.2 3 5] [--seconds 8] [--rounds 2]
                                   [--cpus 0 ...]

The app is this process: a pure-Python loop of ``--work-ms`` of CPU per request (calibrated on the quiet
machine first), served back to back or at one request every ``P`` ms (latest-frame: a request superseded while
the previous one ran is skipped, as the live loop does); beside it, ``--busy`` busy processes
(:class:`adascale_rl.context.load.BusyProcesses`, always stopped). For each busy count and mode it prints the CPU
share (CPU seconds per second, from the kernel's accounting) the app got and each busy process got, the requests
served per second and the service times (work plus preemption).

The contention model gives a thread its fair share of the cores among the runnable threads
(``adascale_rl/device/model.py``: ``1 / (1 + over)`` of a core, ``over`` = runnable threads per core - 1). This
shows where a scheduler splits the cores otherwise: an app that sleeps between requests wakes up on a core that
some busy processes already share, and the kernel's balancer may or may not move it. Run it on a quiet machine;
it measures the host, not a load. The work loop is Python, not the elastic model: the split is the scheduler's.

``--cpus`` pins the app and its busy processes to those CPUs: the same scheduler on a machine of fewer
cores. On one CPU there is no core to choose at wake-up, so a sleeper short of its fair share there is
the scheduler's doing on every core, not where it wakes up.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from adascale_rl._cpus import pin, usable_cpus  # noqa: E402
from adascale_rl.context.load import BusyProcesses  # noqa: E402


def spin(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def calibrate() -> float:
    """Loop iterations per ms of CPU on this machine (the best of five, after half a second of warm-up: the
    first runs of the loop are slower)."""
    t = time.perf_counter()
    while time.perf_counter() - t < 0.5:
        spin(200_000)
    best = 0.0
    for _ in range(5):
        t = time.process_time()
        spin(200_000)
        d = (time.process_time() - t) * 1000.0
        best = max(best, 200_000 / d) if d > 0 else best
    return best


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def serve(period_ms: float | None, n_iter: int, seconds: float, busy: list[psutil.Process]) -> dict:
    """Serve requests for ``seconds`` (back to back when ``period_ms`` is None); the CPU shares over that time."""
    me = psutil.Process()
    c0 = [cpu_s(p) for p in busy]
    m0 = cpu_s(me)
    t0 = time.perf_counter()
    nxt = t0
    service = []
    while True:
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        if period_ms is not None:
            if now < nxt:
                time.sleep(nxt - now)
                now = time.perf_counter()
            step = period_ms / 1000.0
            while nxt + step <= now:  # superseded while the previous request ran
                nxt += step
            nxt += step
        s = time.perf_counter()
        spin(n_iter)
        service.append((time.perf_counter() - s) * 1000.0)
    elapsed = time.perf_counter() - t0
    shares = sorted((cpu_s(p) - a) / elapsed for p, a in zip(busy, c0))
    service.sort()
    n = len(service)
    return {"app": (cpu_s(me) - m0) / elapsed, "busy": shares, "served_hz": n / elapsed,
            "requested_hz": None if period_ms is None else 1000.0 / period_ms,
            "mean_ms": sum(service) / n, "p50_ms": service[n // 2], "p95_ms": service[min(n - 1, int(0.95 * n))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", type=int, nargs="+", default=[2, 4], help="busy-process counts (default 2 4)")
    ap.add_argument("--work-ms", type=float, default=2.0, help="CPU per request on the quiet machine (default 2)")
    ap.add_argument("--periods", type=float, nargs="+", default=[2.2, 3.0, 5.0],
                    help="ms between requests of the open-loop modes (default 2.2 3 5)")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per cell (default 8)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds over every cell (default 2)")
    ap.add_argument("--cpus", type=int, nargs="+", default=None, metavar="CPU",
                    help="pin the app and its busy processes to these CPUs (default: the CPUs this process may use)")
    args = ap.parse_args()
    if any(b < 0 for b in args.busy) or args.work_ms <= 0 or any(p <= 0 for p in args.periods) \
            or args.seconds <= 0 or args.rounds < 1:
        ap.error("--busy must be >= 0; --work-ms, --periods and --seconds > 0; --rounds >= 1")
    pinned = ""
    if args.cpus is not None:
        try:
            pinned = f"; pinned to CPU(s) {' '.join(map(str, pin(args.cpus)))} with its busy processes"
        except ValueError as exc:
            ap.error(f"--cpus: {exc}")
    cores = usable_cpus()
    per_ms = calibrate()
    n_iter = max(1, int(per_ms * args.work_ms))
    la = os.getloadavg()
    print(f"machine: {platform.machine()}, {cores} core{'' if cores == 1 else 's'}{pinned}, Python {platform.python_version()}; load average "
          f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (1, 5, 15 min) at the start")
    print(f"app: {args.work_ms:g} ms of CPU per request ({n_iter} loop iterations); {args.seconds:g} s per cell, "
          f"{args.rounds} rounds; fair share of a core = cores / (busy + 1), at most 1")
    print(f"{'busy':>4} {'mode':>9} {'round':>5} {'fair':>6} {'app':>6}  {'busy processes':<30} {'served/s':>8} "
          f"{'of':>6} {'mean':>6} {'p50':>6} {'p95':>6}")
    modes = [None] + list(args.periods)
    for r in range(args.rounds):
        for b in args.busy:
            with BusyProcesses(b, settle_s=1.0) as bp:
                procs = [psutil.Process(pid) for pid in bp.pids]
                for period in modes:
                    x = serve(period, n_iter, args.seconds, procs)
                    fair = min(1.0, cores / (b + 1))
                    mode = "b2b" if period is None else f"{period:g}ms"
                    of = "" if x["requested_hz"] is None else f"{x['requested_hz']:.0f}"
                    print(f"{b:>4} {mode:>9} {r:>5} {fair:>6.3f} {x['app']:>6.3f}  "
                          f"{' '.join(f'{s:.3f}' for s in x['busy']):<30} {x['served_hz']:>8.0f} {of:>6} "
                          f"{x['mean_ms']:>6.2f} {x['p50_ms']:>6.2f} {x['p95_ms']:>6.2f}", flush=True)
    la = os.getloadavg()
    print(f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} at the end")


if __name__ == "__main__":
    main()
