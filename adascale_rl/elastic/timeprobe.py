"""Latency probe, run as ``python -m adascale_rl.elastic.timeprobe --threads N --shape ... FILE...``.

One fresh process per thread count: the count is set once, before any parallel work, and
never changed. (Changing ``torch.set_num_threads`` inside a process made the quantised
kernels 2-3x slower at the new count for the rest of the process on this machine, so
1-thread and n-thread numbers must not come from the same process.)

Timing is interleaved: every round visits all variants in a freshly shuffled order and
times ``--calls`` batch-1 inferences of each, one by one, after ``--warmup`` untimed calls;
background load that comes and goes is spread over all variants alike. Also records the
process CPU time per call (all threads, for the energy estimate) and, where readable, the
RAPL energy per call. Prints one JSON object: {file: {"ms": [...], "cpu_ms": [...], "rapl_mj": [...]}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def probe_parser() -> argparse.ArgumentParser:
    """The arguments every probe takes: the TorchScript files, the thread count, the input shape, the seed."""
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--shape", default="1,1,8,8")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def load_probe(a: argparse.Namespace):
    """(models by file, one input, the order's generator) with torch set to ``a.threads`` threads for good."""
    import warnings

    import numpy as np
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(a.threads)
    models = {f: torch.jit.load(f).eval() for f in a.files}
    x = torch.randn(tuple(int(s) for s in a.shape.split(",")))
    return models, x, np.random.default_rng(a.seed)


def main(argv=None) -> int:
    ap = probe_parser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args(argv)

    import torch

    from adascale_rl.elastic.host import read_rapl_uj, rapl_files

    models, x, rng = load_probe(a)
    rapl = read_rapl_uj if rapl_files() else None
    out = {f: {"ms": [], "cpu_ms": [], "rapl_mj": []} for f in a.files}
    keys = list(models)
    with torch.inference_mode():
        for _ in range(a.rounds):
            for i in rng.permutation(len(keys)):
                f = keys[i]
                m = models[f]
                for _ in range(a.warmup):
                    m(x)
                c0 = time.process_time()
                e0 = rapl() if rapl else None
                for _ in range(a.calls):
                    t0 = time.perf_counter()
                    m(x)
                    out[f]["ms"].append((time.perf_counter() - t0) * 1e3)
                out[f]["cpu_ms"].append((time.process_time() - c0) * 1e3 / a.calls)
                if e0 is not None:
                    out[f]["rapl_mj"].append((rapl() - e0) / 1e3 / a.calls)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
