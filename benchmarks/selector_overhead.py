"""What the on-device selector costs: the policy forward (numpy, ONNX Runtime) and a full decision.

    python benchmarks/selector_overhead.py [--agent agents/Rpi4-Vision/ppo | --folder EXPORTED]
        [--calls 20000] [--decisions 400] [--interval-ms 20] [--rounds 5]

The controller is exported in a subprocess (``adascale-rl export``), so this process never
imports torch, Stable-Baselines3 or Gymnasium: it measures what an app pays. Timed, per call,
with ``time.perf_counter_ns``:

* **numpy forward**: :class:`adascale_rl.runtime.numpy_policy.NumpyPolicy` on one observation
  (the compiled program, the network, the mask, the argmax), cycling over the folder's 64
  check observations (test-split rollouts);
* the same through the uncompiled path (the shared functions called on arrays), for the ratio;
* a floor: as many numpy calls as the compiled program makes, all one ``np.add`` on one buffer of
  the variants' width (what the program would cost were every operation as cheap and warm);
* **ONNX Runtime**: ``InferenceSession.run`` of policy.onnx on one observation (one thread);
* **context read**: the selector's monitor (psutil, run-queue sampler at 20 Hz) alone;
* **full decision**: ``Selector.select()`` (context read, feedback, observation, mask, forward),
  every ``--interval-ms`` with two ``report()`` calls in between, as an app's loop does; psutil's
  CPU counters move in 10 ms ticks (the monitor waits for one if called sooner), so decisions
  are spaced (the selector is meant to decide once per period, 1 s).

Each quantity is measured in ``--rounds`` interleaved rounds; the table gives the mean of the
per-round p50 and p99 with a 95 % confidence interval (Student t over rounds), the numpy/ONNX
ratio per round, and the fastest catalog variant's profiled latency for scale. The machine and
its load average (before and after) are printed: latency percentiles on a shared machine move
with its load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adascale_rl.context.recorder import cpu_model

import numpy as np

_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}
TARGETS = {"numpy forward": 50.0, "full decision": 1000.0}  # p99, microseconds (issue: deploy the controller)


def _percentiles(ns: list[int]) -> tuple[float, float]:
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _ci(values: list[float]) -> str:
    m = statistics.fmean(values)
    if len(values) < 2:
        return f"{m:.1f}"
    half = _T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{m:.1f} ± {half:.1f}"


def _time_calls(fn, args_list, calls: int) -> list[int]:
    out = []
    k = len(args_list)
    for i in range(calls):
        a = args_list[i % k]
        t0 = time.perf_counter_ns()
        fn(*a)
        out.append(time.perf_counter_ns() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", default="agents/Rpi4-Vision/ppo", help="controller to export and measure")
    ap.add_argument("--folder", default=None, help="an exported folder instead of --agent")
    ap.add_argument("--calls", type=int, default=20000, help="forward calls per round")
    ap.add_argument("--decisions", type=int, default=400, help="full decisions per round")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="time between two decisions")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    tmp = None
    if args.folder:
        folder = Path(args.folder)
    else:
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name) / "exported"
        res = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "export", "--agent", args.agent, "--out",
                              str(folder)], capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"export of {args.agent} failed: {res.stderr.strip()}")

    import onnxruntime as ort

    from adascale_rl.runtime import Selector

    load0 = os.getloadavg()
    sel = Selector.load(folder)
    if sel.status != "ok" or sel.backend != "numpy":
        sys.exit(f"the selector cannot use {folder}: {sel.status}")
    assert not {"torch", "stable_baselines3", "gymnasium"} & set(sys.modules), "the training stack was imported"
    doc = json.loads((folder / "selector.json").read_text())
    with np.load(folder / "policy.npz", allow_pickle=False) as z:
        pool = list(zip(z["check_obs"], z["check_mask"]))
    policy = sel._numpy_policy
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(folder / "policy.onnx"), sess_options=opts, providers=["CPUExecutionProvider"])
    ort_pool = [({"observation": o[None].astype(np.float32), "action_mask": m[None].astype(bool)},) for o, m in pool]
    uncompiled_pool = [(o[None], m[None]) for o, m in pool]
    fastest = min(v["latency_ms"] for v in doc["variants"])
    fastest_id = min(doc["variants"], key=lambda v: v["latency_ms"])["id"]
    sel.set_mode(rate_hz=10, deadline_ms=150)
    interval = args.interval_ms / 1000.0

    def full_decisions(n: int) -> tuple[list[int], list[int]]:
        dec, reads = [], []
        mon = sel._monitor
        for i in range(n):
            time.sleep(interval / 2)
            sel.report(40.0)
            if i % 4 == 0:  # the context read alone, at the same cadence
                t0 = time.perf_counter_ns()
                mon.read()
                reads.append(time.perf_counter_ns() - t0)
                time.sleep(interval / 2)
            else:
                time.sleep(interval / 2)
            sel.report(41.0)
            t0 = time.perf_counter_ns()
            sel.select()
            dec.append(time.perf_counter_ns() - t0)
        return dec, reads

    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, ns: list[int]) -> tuple[float, float]:
        p50, p99 = _percentiles(ns)
        r = rows.setdefault(name, {"p50": [], "p99": []})
        r["p50"].append(p50)
        r["p99"].append(p99)
        return p50, p99

    _time_calls(policy, pool, 2000)  # warm-up
    # the floor the compiled program sits on: as many numpy calls as it makes, all one ufunc on one buffer
    n_ops = int(policy._program.operations)
    buf_a, buf_b, buf_o = np.ones(policy.n_variants), np.ones(policy.n_variants), np.empty(policy.n_variants)

    def same_calls(_):
        add_ = np.add
        for _i in range(n_ops):
            add_(buf_a, buf_b, buf_o)

    floor_name = f"{n_ops} identical numpy calls (floor)"
    _time_calls(sess.run, [(None,) + a for a in ort_pool], 500)
    ratios = []
    for _ in range(args.rounds):
        np50, _ = add("numpy forward", _time_calls(policy, pool, args.calls))
        o50, _ = add("ONNX Runtime forward", _time_calls(sess.run, [(None,) + a for a in ort_pool], args.calls))
        add("numpy forward, uncompiled", _time_calls(policy.batch, uncompiled_pool, max(args.calls // 10, 200)))
        add(floor_name, _time_calls(same_calls, [(None,)], args.calls))
        dec, reads = full_decisions(args.decisions)
        add("context read (monitor)", reads)
        add("full decision", dec)
        ratios.append(o50 / np50)
    load1 = os.getloadavg()
    sel.close()

    print(f"machine: {cpu_model() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, Python "
          f"{platform.python_version()}, numpy {np.__version__}, onnxruntime {ort.__version__}")
    print(f"load average (1, 5, 15 min): before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"controller: {doc['source'].get('path')} on {doc['env']['id']} ({len(doc['variants'])} variants, "
          f"observation of {doc['observation']['size']}); {args.rounds} rounds of {args.calls} forward calls and "
          f"{args.decisions} decisions every {args.interval_ms:g} ms\n")
    print("| quantity | p50 (us) | p99 (us) | target p99 (us) | p99 / fastest variant |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        target = TARGETS.get(name)
        share = statistics.fmean(r["p99"]) / (fastest * 1000.0)
        print(f"| {name} | {_ci(r['p50'])} | {_ci(r['p99'])} | {'' if target is None else f'{target:g}'} | "
              f"{share:.2%} |")
    print(f"\nfastest catalog variant: {fastest_id}, {fastest:g} ms profiled (top clock, cores free)")
    print(f"ONNX Runtime / numpy forward, p50 per round: {statistics.median(ratios):.2f}x "
          f"(range {min(ratios):.2f}-{max(ratios):.2f})")
    for k, t in TARGETS.items():
        got = statistics.fmean(rows[k]["p99"])
        print(f"target {k} p99 <= {t:g} us: {'met' if got <= t else 'NOT met'} ({got:.1f} us)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
