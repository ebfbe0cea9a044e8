"""Put traces with jittered timestamps on a regular grid: ``adascale-rl traces resample``.

A recorder other than ``adascale-rl record`` often writes the time each sample was
actually taken (1.006 s, 2.017 s, ...), and a late sample makes a step the validator
refuses as irregular. Resampling reads such a trace with every check but the
regular spacing, then writes it at ``t0 + k * period`` for every ``k`` up to the last
timestamp: numeric columns interpolated linearly between the two neighbouring
samples, flags (``plugged``) held from the sample before
(:meth:`adascale_rl.context.traces.Trace.resample`). The result is validated as the
loader will read it before anything is written, and it is written all at once.

It takes what ``traces validate`` takes: one CSV file (written as one file), a plain
folder of CSV files (written as a folder of the same names) or a dataset folder
(written as a dataset, ``period_s`` and ``how_made`` updated).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from adascale_rl.context import schema
from adascale_rl.context.recorder import DECIMALS  # interpolated values are written as the recorder writes them
from adascale_rl.context.traces import (
    SPLITS, Trace, TraceError, _read_text, _umask, atomic_write_text, check_meta, csv_folder, parse_csv,
    read_manifest, read_meta, save_dataset, sha256_file, trace_to_csv,
)


def read_irregular(path: Path) -> Trace:
    """One trace CSV, every check but the regular spacing of its timestamps."""
    data = parse_csv(_read_text(path), file=path, regular=False)
    if len(data["t_s"]) < 2:
        raise TraceError("a single-row trace has no period; record at least two rows", file=path)
    return Trace(path.stem, None, data, path=path)


def nominal_period(traces: list[Trace]) -> float:
    """The grid a jittered recording was meant to have: the median step over all traces,
    rounded to two significant digits (1.006, 1.017, 0.998 ... -> 1.0)."""
    steps = np.concatenate([np.diff(t.data["t_s"]) for t in traces])
    median = float(np.median(steps))
    digits = 1 - int(math.floor(math.log10(median)))
    return round(median, digits)


def on_grid(trace: Trace, period_s: float) -> dict[str, np.ndarray]:
    """The trace at ``t0 + k * period_s``, rounded as the recorder writes, within the schema's ranges."""
    out = trace.resample(period_s).data
    t0 = float(trace.data["t_s"][0])
    out["t_s"] = np.round(t0 + np.arange(len(out["t_s"])) * period_s, DECIMALS["t_s"])
    for name, values in out.items():
        if name != "t_s":
            f = schema.BY_NAME[name]
            out[name] = np.clip(np.round(values, DECIMALS.get(name, 6)), f.low, f.high)
    return out


def _check(text: str, rel: str, period_s: float) -> None:
    parse_csv(text, file=rel, period_s=period_s)  # what the loader will say about it


def _check_period(period_s: float | None) -> None:
    if period_s is not None and not (isinstance(period_s, (int, float)) and math.isfinite(period_s) and period_s > 0):
        raise ValueError(f"--period must be a positive number of seconds, not {period_s!r}")


def resample_path(src: str | os.PathLike, out: str | os.PathLike,
                  period_s: float | None = None) -> tuple[Path, float, int]:
    """Resample a CSV file, a plain folder of CSVs or a dataset into ``out`` (which must not exist);
    returns (out, the period used, the number of traces)."""
    src, out = Path(src), Path(out)
    _check_period(period_s)
    if not src.exists():
        raise TraceError("no such file or folder", file=src)
    if out.exists():
        raise FileExistsError(f"{out} exists; resample writes a new file or folder: choose another --out")
    if out.resolve() == src.resolve():
        raise ValueError(f"--out {out} is the input; choose another --out")
    if src.is_file():
        trace = read_irregular(src)
        period = period_s or nominal_period([trace])
        text = trace_to_csv(trace.columns, on_grid(trace, period))
        _check(text, out.name, period)
        atomic_write_text(out, text)
        return out, period, 1
    files = csv_folder(src)
    if files:
        traces = [read_irregular(f) for f in files]
        period = period_s or nominal_period(traces)
        texts = {f.name: trace_to_csv(t.columns, on_grid(t, period)) for f, t in zip(files, traces)}
        for name, text in texts.items():
            _check(text, name, period)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            for name, text in texts.items():
                (tmp / name).write_text(text, encoding="utf-8")
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out, period, len(traces)
    return _resample_dataset(src, out, period_s)


def _resample_dataset(src: Path, out: Path, period_s: float | None) -> tuple[Path, float, int]:
    meta = read_meta(src)
    manifest = read_manifest(src)
    for rel, digest in manifest.items():  # the input must be what its MANIFEST says, as load_dataset checks
        if not (src / rel).is_file() or sha256_file(src / rel) != digest:
            raise TraceError("checksum mismatch or missing file: the dataset differs from its MANIFEST", file=src / rel)
    columns = [c["name"] for c in meta["columns"]]
    splits = {s: sorted((src / s).glob("*.csv")) for s in SPLITS if (src / s).is_dir()}
    traces = {s: [read_irregular(f) for f in fs] for s, fs in splits.items() if fs}
    if not traces:
        raise TraceError("the dataset has no CSV files under train/ or test/", file=src)
    for s, ts in traces.items():
        for t in ts:
            if set(t.data) != set(columns):
                raise TraceError(f"header {','.join(t.columns)} does not match the columns {','.join(columns)} "
                                 f"declared in schema.json", file=t.path, line=1)
    period = period_s or nominal_period([t for ts in traces.values() for t in ts])
    new = dict(meta)
    new["period_s"] = period
    new["how_made"] = (f"{meta['how_made']} Resampled with `adascale-rl traces resample` from timestamps at "
                       f"irregular steps onto a regular {period:g} s grid (linear interpolation; flags held).")
    check_meta(new)
    data = {s: {t.name: on_grid(t, period) for t in ts} for s, ts in traces.items()}
    # save_dataset validates every table as the loader reads it before it writes the folder at once
    return save_dataset(out, new, data), period, sum(len(ts) for ts in traces.values())
