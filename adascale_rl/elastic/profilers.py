"""Profilers: latency, parallel fraction, CPU time (energy), peak memory and size of deployed variants.

Timing is interleaved: in every round the variants are visited in a freshly shuffled order
and, for each, ``calls`` batch-1 inferences are timed one by one at the reference thread
count and then at one thread (after ``warmup`` untimed calls each time). So background load
that comes and goes spreads over all variants alike, and 1-thread and n-thread numbers of
the same variant are taken side by side. Reported: median and p95 per variant.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Timing:
    samples_ms: list[float] = field(default_factory=list)
    samples_1t_ms: list[float] = field(default_factory=list)
    cpu_ms_per_call: list[float] = field(default_factory=list)  # process CPU time per call, per block
    rapl_mj_per_call: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 95))

    @property
    def median_1t_ms(self) -> float:
        return float(np.median(self.samples_1t_ms)) if self.samples_1t_ms else float("nan")

    @property
    def cpu_ms(self) -> float:
        return float(np.median(self.cpu_ms_per_call))


def time_variants(models: dict[str, torch.nn.Module], example: torch.Tensor, *, threads: int, rounds: int = 20,
                  calls: int = 10, warmup: int = 3, seed: int = 0, progress=None, rapl=None) -> dict[str, Timing]:
    """Interleaved batch-1 timing of every model at ``threads`` and at 1 thread."""
    rng = np.random.default_rng(seed)
    out = {k: Timing() for k in models}
    keys = list(models)
    thread_settings = [threads] + ([1] if threads > 1 else [])
    prev = torch.get_num_threads()
    try:
        with torch.inference_mode():
            for _ in range(rounds):
                for i in rng.permutation(len(keys)):
                    k = keys[i]
                    m = models[k]
                    for th in thread_settings:
                        torch.set_num_threads(th)
                        for _ in range(warmup):
                            m(example)
                        c0 = time.process_time()
                        e0 = rapl() if rapl is not None and th == threads else None
                        for _ in range(calls):
                            t0 = time.perf_counter()
                            m(example)
                            dt = (time.perf_counter() - t0) * 1e3
                            (out[k].samples_ms if th == threads else out[k].samples_1t_ms).append(dt)
                        if th == threads:
                            out[k].cpu_ms_per_call.append((time.process_time() - c0) * 1e3 / calls)
                            if e0 is not None:
                                out[k].rapl_mj_per_call.append((rapl() - e0) / 1e3 / calls)
                    if progress is not None:
                        progress(1)
    finally:
        torch.set_num_threads(prev)
    return out


def amdahl_parallel_frac(t1_ms: float, tn_ms: float, n: int) -> float:
    """Fit T_n = T_1 ((1 - p) + p / n) for p, clamped to [0, 1] (noise can push it outside)."""
    if n <= 1 or not (t1_ms > 0 and tn_ms > 0):
        return 0.0
    p = (1.0 - tn_ms / t1_ms) / (1.0 - 1.0 / n)
    return float(min(1.0, max(0.0, p)))


def peak_memory(path: Path, *, threads: int, shape: tuple[int, ...], iters: int = 30, timeout_s: float = 120) -> dict:
    """Run :mod:`adascale_rl.elastic.memprobe` on a saved variant in a fresh interpreter."""
    cmd = [sys.executable, "-m", "adascale_rl.elastic.memprobe", str(path), "--threads", str(threads),
           "--shape", ",".join(str(s) for s in shape), "--iters", str(iters)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise RuntimeError(f"memory probe failed for {path}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def save_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> int:
    """Trace ``model`` at batch 1 and save it; returns the file size in bytes.

    TorchScript is the deployable format here: it loads with ``torch.jit.load`` without
    this package, and it is the one format that also carries the int8 (FX-quantised) models.
    """
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation notice
        with torch.no_grad():
            traced = torch.jit.trace(model.eval(), example)
        torch.jit.save(traced, str(path))
    return path.stat().st_size


def load_torchscript(path: Path) -> torch.nn.Module:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.jit.load(str(path))
    return m.eval()
