"""Peak-memory probe, run as ``python -m adascale_rl.elastic.memprobe FILE`` in a fresh process.

Method: import torch, fix the thread count and trace, run and drop a tiny TorchScript
convolution so the runtime's own start-up (thread pool, kernel dispatch tables, TorchScript
interpreter) is in the baseline, as it is in an app that already runs a variant; read the resident
set size (RSS). Then load the TorchScript variant and run it ``--iters`` times at batch 1
while a thread samples RSS every millisecond. The variant's peak memory is the peak RSS
(the larger of the sampled peak and the kernel's ``ru_maxrss`` if it rose past its
pre-load value) minus the baseline: weights, activations, workspaces and allocator
overhead that this variant adds to a process that already runs torch. ``tracemalloc``
cannot see torch's C++ allocations, hence RSS. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shape", default="1,1,8,8")
    ap.add_argument("--iters", type=int, default=30)
    a = ap.parse_args(argv)

    import psutil
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    proc = psutil.Process()
    import warnings

    warnings.simplefilter("ignore")
    # Warm the runtime the app already has: eager kernels, TorchScript loader and interpreter.
    warm = torch.jit.trace(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                               torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 4)).eval(),
                           torch.randn(1, 1, 8, 8))
    with torch.inference_mode():
        for _ in range(3):
            warm(torch.randn(1, 1, 8, 8))
        F.linear(torch.randn(1, 8), torch.randn(4, 8))
    del warm
    base = proc.memory_info().rss
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = base
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.001)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    shape = tuple(int(s) for s in a.shape.split(","))
    t0 = time.perf_counter()
    model = torch.jit.load(a.path)
    model.eval()
    x = torch.randn(shape)
    with torch.inference_mode():
        model(x)
        t_first = time.perf_counter()
        for _ in range(a.iters):
            model(x)
    stop.set()
    t.join()
    peak = max(peak, proc.memory_info().rss)
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if maxrss_after > maxrss_before:
        peak = max(peak, maxrss_after)
    print(json.dumps({"peak_delta_mb": (peak - base) / 2**20, "baseline_rss_mb": base / 2**20,
                      "load_and_first_ms": (t_first - t0) * 1e3}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
