"""Variant catalogs: the table of an elastic model's variants, defined once.

A catalog is a JSON file (``envs/catalogs/*.json``, or written by
``adascale-rl profile``)::

    {
      "format": "adascale-catalog", "format_version": 1,
      "name": "rpi4-mobilenetv2", "device": "rpi4", "task": "ImageNet-1k top-1",
      "reference": "what latency_ms etc. were measured at (clock, threads)",
      "machine": {...},                      # optional: where a measured catalog was measured
      "runtime_overhead_mb": {"value": 20.0, "derived": "..."},
                                             # optional: memory every variant's peak_mem_mb includes
                                             # for the runtime itself; one process holds it once, so
                                             # a switch needs old + new - overhead
      "threads": {"value": 4, "derived": "..."},
                                             # optional: threads the app runs an inference on (what
                                             # latency_ms was measured with); default: the device's cores
      "variants": [
        {"id": "w1.0-r224-fp32",
         "branch": {"width": 1.0, "resolution": 224, "exit": "final"},
         "operators": ["fp32"],
         "accuracy": 0.718,                   # fraction, on the task above
         "latency_ms": 61.9,                  # at the top clock, all cores free
         "compute_bound_frac": 0.8,           # share of latency that scales with 1/clock
         "parallel_frac": 0.6,                # Amdahl parallel fraction over the device's cores
         "peak_mem_mb": 40.0,                 # resident memory while running
         "size_mb": 14.0,                     # on disk (sets the load time)
         "energy_mj": 150.0,                  # dynamic energy above idle per inference at the reference point
         "contention": {...},                 # optional: measured latency under busy processes (profile)
         "provenance": {"accuracy": {"kind": "published", "source": "..."},
                        "latency_ms": {"kind": "derived", "rule": "..."},
                        "...": {"kind": "measured", "method": "..."}}}
      ]
    }

``contention`` (written by ``adascale-rl profile``) holds the latency measured with 0, 1, 2
and 2 x cores busy processes beside the inference: ``{"busy_processes": [...], "mode": [...],
"mean_ms": [...], "p50_ms": [...], "p95_ms": [...], "method": "..."}`` per mode (back to back,
and at a request rate); the simulator's contention model is fitted to and checked against it.

Every metric needs a provenance entry: ``published`` with a ``source``,
``derived`` with the ``rule`` that produced it, or ``measured`` with the
``method`` (and the catalog's ``machine``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

FORMAT = "adascale-catalog"
FORMAT_VERSION = 1
OPERATORS = ("fp32", "int8", "prune", "lowrank", "early-exit")
METRICS: dict[str, tuple[float, float]] = {
    # name: (low, high) inclusive
    "accuracy": (0.0, 1.0),
    "latency_ms": (1e-6, 1e7),
    "compute_bound_frac": (0.0, 1.0),
    "parallel_frac": (0.0, 1.0),
    "peak_mem_mb": (1e-6, 1e7),
    "size_mb": (1e-6, 1e7),
    "energy_mj": (1e-9, 1e9),
}
PROVENANCE_KINDS = {"published": "source", "derived": "rule", "measured": "method"}


class CatalogError(ValueError):
    """A catalog that does not follow the format; the message names the file and field."""


@dataclass(frozen=True)
class Variant:
    id: str
    branch: dict[str, Any]
    operators: tuple[str, ...]
    accuracy: float
    latency_ms: float
    compute_bound_frac: float
    parallel_frac: float
    peak_mem_mb: float
    size_mb: float
    energy_mj: float
    provenance: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)
    contention: dict[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d["operators"] = list(self.operators)
        if d["contention"] is None:
            del d["contention"]
        return d


@dataclass
class Catalog:
    name: str
    device: str
    task: str
    variants: list[Variant]
    reference: str = ""
    machine: dict[str, Any] | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    runtime_overhead_mb: float = 0.0
    runtime_overhead_origin: str = ""
    threads: int | None = None          # the app's inference threads; None: the device's cores
    threads_origin: str = ""

    def __len__(self) -> int:
        return len(self.variants)

    def __getitem__(self, i: int) -> Variant:
        return self.variants[i]

    @property
    def ids(self) -> list[str]:
        return [v.id for v in self.variants]

    def index(self, variant_id: str) -> int:
        try:
            return self.ids.index(variant_id)
        except ValueError:
            raise KeyError(f"catalog {self.name} has no variant {variant_id!r}; it has {', '.join(self.ids)}") from None

    def column(self, metric: str):
        import numpy as np

        return np.array([getattr(v, metric) for v in self.variants], dtype=np.float64)

    @property
    def largest(self) -> int:
        """Index of the most accurate variant (ties: the slower one, the 'full model')."""
        return max(range(len(self)), key=lambda i: (self.variants[i].accuracy, self.variants[i].latency_ms))

    @property
    def smallest(self) -> int:
        """Index of the fastest variant."""
        return min(range(len(self)), key=lambda i: (self.variants[i].latency_ms, -self.variants[i].accuracy))

    def to_json(self) -> dict:
        d = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "device": self.device,
             "task": self.task, "reference": self.reference}
        if self.machine is not None:
            d["machine"] = self.machine
        if self.runtime_overhead_origin:
            kind, _, text = self.runtime_overhead_origin.partition(": ")
            d["runtime_overhead_mb"] = {"value": self.runtime_overhead_mb, kind: text}
        if self.threads is not None:
            kind, _, text = self.threads_origin.partition(": ")
            d["threads"] = {"value": self.threads, kind: text}
        clash = set(self.extra) & (_KNOWN | {"runtime_overhead_mb", "threads"})
        if clash:
            raise CatalogError(f"catalog {self.name}: extra keys {', '.join(sorted(clash))} would overwrite the format's own keys")
        d.update(self.extra)
        d["variants"] = [v.to_json() for v in self.variants]
        return d

    def save(self, path: str | os.PathLike) -> Path:
        from adascale_rl._files import atomic_write_text

        path = Path(path)
        validate(self.to_json(), source=str(path))
        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")
        return path


_KNOWN = {"format", "format_version", "name", "device", "task", "reference", "machine", "variants"}
_VARIANT_KEYS = {"id", "branch", "operators", "provenance", "contention", *METRICS}


def _fail(source: str, where: str, msg: str) -> CatalogError:
    return CatalogError(f"{source}: {where}: {msg}")


def validate(doc: Mapping, *, source: str = "catalog") -> Catalog:
    """Check a catalog document and return it as a :class:`Catalog`."""
    if not isinstance(doc, Mapping):
        raise _fail(source, "top level", "must be a JSON object")
    for key in ("format", "format_version", "name", "device", "task", "variants"):
        if key not in doc:
            raise _fail(source, key, "required key is missing")
    if doc["format"] != FORMAT:
        raise _fail(source, "format", f"is {doc['format']!r}, expected {FORMAT!r}")
    if doc["format_version"] != FORMAT_VERSION:
        raise _fail(source, "format_version", f"unknown version {doc['format_version']!r}; this adascale-rl reads {FORMAT_VERSION}")
    raw = doc["variants"]
    if not isinstance(raw, Sequence) or len(raw) < 1:
        raise _fail(source, "variants", "must be a non-empty list")
    variants = []
    seen = set()
    for i, v in enumerate(raw):
        where = f"variants[{i}]"
        if not isinstance(v, Mapping):
            raise _fail(source, where, "must be an object")
        vid = v.get("id")
        if not isinstance(vid, str) or not vid:
            raise _fail(source, f"{where}.id", "must be a non-empty string")
        where = f"variant {vid!r}"
        unknown = set(v) - _VARIANT_KEYS
        if unknown:
            raise _fail(source, where, f"unknown key(s) {', '.join(sorted(unknown))}; a variant has "
                                       f"{', '.join(sorted(_VARIANT_KEYS))}")
        if vid in seen:
            raise _fail(source, where, "id appears twice")
        seen.add(vid)
        if not isinstance(v.get("branch"), Mapping):
            raise _fail(source, f"{where}.branch", "must be an object (width, resolution, exit, ...)")
        ops = v.get("operators")
        if not isinstance(ops, Sequence) or isinstance(ops, str) or not ops:
            raise _fail(source, f"{where}.operators", f"must be a non-empty list drawn from {', '.join(OPERATORS)}")
        for op in ops:
            if op not in OPERATORS:
                raise _fail(source, f"{where}.operators", f"unknown operator {op!r}; known: {', '.join(OPERATORS)}")
        prov = v.get("provenance")
        if not isinstance(prov, Mapping):
            raise _fail(source, f"{where}.provenance", "must be an object with an entry per metric")
        values = {}
        for metric, (lo, hi) in METRICS.items():
            x = v.get(metric)
            if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
                raise _fail(source, f"{where}.{metric}", f"must be a finite number, not {x!r}")
            if not lo <= x <= hi:
                raise _fail(source, f"{where}.{metric}", f"{x:g} is out of range [{lo:g}, {hi:g}]")
            values[metric] = float(x)
            p = prov.get(metric)
            if not isinstance(p, Mapping) or p.get("kind") not in PROVENANCE_KINDS:
                raise _fail(source, f"{where}.provenance.{metric}",
                            f"needs kind one of {', '.join(PROVENANCE_KINDS)}")
            needed = PROVENANCE_KINDS[p["kind"]]
            if not isinstance(p.get(needed), str) or not p[needed].strip():
                raise _fail(source, f"{where}.provenance.{metric}", f"kind {p['kind']!r} needs a non-empty {needed!r}")
        cont = v.get("contention")
        if cont is not None and not (isinstance(cont, Mapping) and isinstance(cont.get("method"), str)
                                     and all(isinstance(cont.get(k), Sequence) for k in ("busy_processes", "mean_ms"))):
            raise _fail(source, f"{where}.contention", "must be an object with 'busy_processes', 'mean_ms' (lists) "
                                                       "and a 'method'")
        variants.append(Variant(id=vid, branch=dict(v["branch"]), operators=tuple(ops),
                                provenance={k: dict(p) for k, p in prov.items()},
                                contention=None if cont is None else dict(cont), **values))
    if any(v.get("provenance", {}).get(m, {}).get("kind") == "measured" for v in raw for m in METRICS):
        if not isinstance(doc.get("machine"), Mapping):
            raise _fail(source, "machine", "a catalog with measured numbers must describe the machine")
    overhead, origin = 0.0, ""
    if "runtime_overhead_mb" in doc:
        ro = doc["runtime_overhead_mb"]
        kinds = [k for k in ("source", "derived", "measured") if isinstance(ro, Mapping) and isinstance(ro.get(k), str)]
        x = ro.get("value") if isinstance(ro, Mapping) else None
        if not kinds or not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) or x < 0:
            raise _fail(source, "runtime_overhead_mb", "must be {value: MB >= 0, source|derived|measured: '...'}")
        if any(x > v.peak_mem_mb for v in variants):
            raise _fail(source, "runtime_overhead_mb", f"{x:g} MB exceeds a variant's peak_mem_mb")
        overhead, origin = float(x), f"{kinds[0]}: {ro[kinds[0]]}"
    threads, threads_origin = None, ""
    if "threads" in doc:
        th = doc["threads"]
        kinds = [k for k in ("source", "derived", "measured") if isinstance(th, Mapping) and isinstance(th.get(k), str)]
        x = th.get("value") if isinstance(th, Mapping) else None
        if not kinds or not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= 1024:
            raise _fail(source, "threads", "must be {value: a whole number of threads >= 1, source|derived|measured: '...'}")
        threads, threads_origin = int(x), f"{kinds[0]}: {th[kinds[0]]}"
    extra = {k: v for k, v in doc.items() if k not in _KNOWN | {"runtime_overhead_mb", "threads"}}
    return Catalog(name=str(doc["name"]), device=str(doc["device"]), task=str(doc["task"]), variants=variants,
                   reference=str(doc.get("reference", "")), machine=doc.get("machine"), extra=extra,
                   runtime_overhead_mb=overhead, runtime_overhead_origin=origin, threads=threads,
                   threads_origin=threads_origin)


def load_catalog(path: str | os.PathLike) -> Catalog:
    from adascale_rl._files import read_data

    path = Path(path)
    cat = validate(read_data(path, CatalogError), source=str(path))
    cat.path = path
    return cat
