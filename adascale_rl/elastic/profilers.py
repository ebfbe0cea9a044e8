"""Profilers: latency, parallel fraction, CPU time (energy), peak memory and size of deployed variants.

Timing and memory are measured in fresh processes on the saved TorchScript files
(:mod:`.timeprobe`, :mod:`.memprobe`). Timing is interleaved: every round visits all
variants in a freshly shuffled order, so background load that comes and goes spreads over
all variants alike; each thread count gets its own process (see :mod:`.timeprobe` for why),
and sessions alternate the thread counts. Reported: median and p95 per variant.
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
    """Per-variant samples: latency at every thread count timed, CPU time and RAPL energy per call
    (both at the reference thread count)."""

    samples: dict[int, list[float]] = field(default_factory=dict)
    cpu_ms_per_call: list[float] = field(default_factory=list)
    rapl_mj_per_call: list[float] = field(default_factory=list)
    reference_threads: int = 1

    @property
    def samples_ms(self) -> list[float]:
        return self.samples.get(self.reference_threads, [])

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 95))

    def median_at(self, threads: int) -> float:
        xs = self.samples.get(threads)
        return float(np.median(xs)) if xs else float("nan")

    @property
    def cpu_ms(self) -> float:
        return float(np.median(self.cpu_ms_per_call))


def time_variants(files: dict[str, Path], shape: tuple[int, ...], *, threads: int, also_threads: tuple[int, ...] = (),
                  sessions: int = 2, rounds: int = 10, calls: int = 10, warmup: int = 3, seed: int = 0,
                  progress=None, timeout_s: float = 3600) -> dict[str, Timing]:
    """Interleaved batch-1 timing of saved TorchScript variants.

    For each of ``sessions`` sessions and each thread count (``threads`` first, then
    ``also_threads``), one fresh :mod:`adascale_rl.elastic.timeprobe` process times all
    variants round-robin for ``rounds`` rounds of ``calls`` calls (half of each for the
    ``also_threads`` counts, which only feed the Amdahl fit). Sessions alternate the thread
    counts, so slow drifts in background load hit both alike.
    """
    settings = list(dict.fromkeys([threads, *also_threads]))
    out = {k: Timing(reference_threads=threads) for k in files}
    by_file = {str(f): k for k, f in files.items()}
    for s in range(sessions):
        for th in settings:
            r_, c_ = (rounds, calls) if th == threads else (max(1, rounds // 2), max(2, calls // 2))
            cmd = [sys.executable, "-m", "adascale_rl.elastic.timeprobe", "--threads", str(th),
                   "--shape", ",".join(str(x) for x in shape), "--rounds", str(r_), "--calls", str(c_),
                   "--warmup", str(warmup), "--seed", str(seed * 1000 + s), *by_file]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            if r.returncode != 0:
                raise RuntimeError(f"timing probe failed ({th} threads): {r.stderr.strip()[-800:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            for f, d in res.items():
                t = out[by_file[f]]
                t.samples.setdefault(th, []).extend(d["ms"])
                if th == threads:
                    t.cpu_ms_per_call.extend(d["cpu_ms"])
                    t.rapl_mj_per_call.extend(d["rapl_mj"])
            if progress is not None:
                progress(1)
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
