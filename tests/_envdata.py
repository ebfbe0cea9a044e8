"""Small purpose-made catalogs, traces and environment specs for the tests.

A plain module (not conftest.py): several conftest modules exist under tests/, and
``from conftest import ...`` would pick whichever was imported first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from adascale_rl.context.traces import make_meta, save_dataset
from adascale_rl.device.catalog import FORMAT, FORMAT_VERSION
from adascale_rl.environment.spec import EnvSpec

_PROV = {"kind": "derived", "rule": "test fixture"}


def make_catalog_doc(variants: list[dict], device: str = "rpi4") -> dict:
    """A catalog document from ``[{id, accuracy, latency_ms, peak_mem_mb, ...}]`` with defaults."""
    out = []
    for v in variants:
        full = {"branch": {"width": 1.0}, "operators": ["fp32"], "compute_bound_frac": 0.8,
                "parallel_frac": 0.6, "size_mb": 10.0, "energy_mj": 100.0, **v}
        full["provenance"] = {m: _PROV for m in ("accuracy", "latency_ms", "compute_bound_frac", "parallel_frac",
                                                 "peak_mem_mb", "size_mb", "energy_mj")}
        out.append(full)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": "fixture", "device": device,
            "task": "test", "variants": out}


LADDER = [
    {"id": "big", "accuracy": 0.75, "latency_ms": 120.0, "peak_mem_mb": 60.0, "size_mb": 24.0, "energy_mj": 330.0},
    {"id": "mid", "accuracy": 0.70, "latency_ms": 60.0, "peak_mem_mb": 40.0, "size_mb": 14.0, "energy_mj": 170.0},
    {"id": "small", "accuracy": 0.60, "latency_ms": 20.0, "peak_mem_mb": 25.0, "size_mb": 6.0, "energy_mj": 55.0},
    {"id": "tiny", "accuracy": 0.45, "latency_ms": 5.0, "peak_mem_mb": 15.0, "size_mb": 2.0, "energy_mj": 14.0},
]


def constant_trace(n: int, **cols) -> dict[str, np.ndarray]:
    data = {"t_s": np.arange(n, dtype=float), "bg_cpu_util": np.full(n, 0.1), "mem_avail_mb": np.full(n, 2000.0)}
    for k, v in cols.items():
        data[k] = np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
    return data


def write_env(tmp: Path, *, device: str = "rpi4", variants=LADDER, train=None, test=None,
              reward="balanced", steps: int = 50) -> EnvSpec:
    """Write a catalog, a dataset and a spec into ``tmp``; return the spec."""
    cat = tmp / "catalog.json"
    cat.write_text(json.dumps(make_catalog_doc(list(variants), device)))
    train = train or {f"t{i}": constant_trace(120, request_rate_hz=8, deadline_ms=150) for i in range(4)}
    test = test or {"e0": constant_trace(120, request_rate_hz=8, deadline_ms=150)}
    cols = sorted({c for d in (*train.values(), *test.values()) for c in d})
    meta = make_meta(name="fixture", version=1, device=device, device_mem_total_mb=3792, period_s=1.0,
                     source="simulated", how_made="test fixture", columns=cols)
    ds = save_dataset(tmp / "fixture-v1", meta, {"train": train, "test": test})
    return EnvSpec(id="AdaScale/Fixture-Test-v4", description="fixture", device=device, catalog=str(cat),
                   dataset=str(ds), reward=reward, period_s=1.0, max_episode_steps=steps)
