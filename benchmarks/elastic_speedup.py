"""Speed-up ladder of the profiled elastic model, re-timed in repeated interleaved sessions.

Reads a catalog written by ``adascale-rl profile`` and the TorchScript variants cached next to
the trained supernet, then runs ``--sessions`` independent interleaved timing sessions (each a
fresh process timing all variants round-robin, shuffled order per round, batch 1, fixed threads). Per session it
computes, as ratios within that session:

- fastest variant vs the full model (``w1-final-r24-fp32``): latency ratio;
- the most accurate variant whose latency is at most half the full model's: its latency
  ratio and its accuracy loss (accuracy from the catalog, measured on the test split).

It reports mean, min/max and a 95 % t-interval over sessions, plus the background load.

Usage::

    python benchmarks/elastic_speedup.py --catalog envs/catalogs/local-x86.json [--sessions 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys



def main(argv=None) -> int:
    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.elastic import host
    from adascale_rl.elastic.data import load_data
    from adascale_rl.elastic.profilers import time_variants
    from adascale_rl.elastic.variants import variant_files

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="envs/catalogs/local-x86.json")
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--full", default="w1-final-r24-fp32")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    cat = load_catalog(a.catalog)
    meta = cat.extra["elastic"]
    data = load_data(meta["data"], meta["seed"])
    files = variant_files(cat)
    acc = {v.id: v.accuracy for v in cat.variants}
    threads = a.threads or cat.machine["threads_used"]
    shape = tuple(data.x_test[:1].shape)
    sessions = []
    for s in range(a.sessions):
        with host.LoadMonitor() as mon:
            t = time_variants(files, shape, threads=threads, sessions=1, rounds=a.rounds, calls=10, seed=1000 + s)
        med = {k: v.median_ms for k, v in t.items()}
        full = med[a.full]
        fastest = min(med, key=med.get)
        half = [k for k in med if med[k] <= full / 2]
        best_half = max(half, key=lambda k: (acc[k], -med[k])) if half else None
        row = {"session": s, "full_ms": full, "fastest": fastest, "fastest_ms": med[fastest],
               "speedup_fastest": full / med[fastest],
               "best_half": best_half, "best_half_speedup": full / med[best_half] if best_half else None,
               "best_half_acc_loss_pts": (acc[a.full] - acc[best_half]) * 100 if best_half else None,
               "background": mon.summary()["mean"]}
        sessions.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    def summary(key):
        xs = [r[key] for r in sessions if r[key] is not None]
        m = statistics.mean(xs)
        h = 2.776 * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")  # t(0.975, 4)
        if len(xs) != 5 and len(xs) > 1:
            from statistics import NormalDist

            h = NormalDist().inv_cdf(0.975) * statistics.stdev(xs) / math.sqrt(len(xs))
        return {"mean": m, "ci95": h, "min": min(xs), "max": max(xs)}

    res = {"threads": threads, "sessions": sessions, "speedup_fastest": summary("speedup_fastest"),
           "best_half_speedup": summary("best_half_speedup"), "best_half_acc_loss_pts": summary("best_half_acc_loss_pts"),
           "full_accuracy": acc[a.full], "machine": host.machine_description(threads)}
    for k in ("speedup_fastest", "best_half_speedup", "best_half_acc_loss_pts"):
        s = res[k]
        print(f"{k}: mean {s['mean']:.2f} ± {s['ci95']:.2f} (95 % CI), range {s['min']:.2f}-{s['max']:.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
