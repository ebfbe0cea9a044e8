"""Trace datasets: load, validate, save.

A trace is a CSV file of context samples (see :mod:`adascale_rl.context.schema`) at
a fixed period. A trace dataset is a folder::

    <name>-v<N>/
      schema.json      columns, units, period, device, source, how it was made, licence
      MANIFEST         "sha256  relative/path" per data file (``sha256sum -c`` reads it)
      train/*.csv
      test/*.csv

Loading is all-or-nothing: every checksum and every cell is checked before any
trace is returned, and the first problem is raised as a :class:`TraceError` whose
message is one sentence naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from adascale_rl.context import schema
from adascale_rl._files import _umask, atomic_write_text, file_mode  # noqa: F401  (re-exported: the recorder, resample and tests use them from here)

FORMAT = "adascale-trace-dataset"
SCHEMA_VERSION = 1
SPLITS = ("train", "test")
SOURCES = ("recorded", "simulated")
#: relative tolerance on the spacing of timestamps (recorders write nominal times)
PERIOD_TOLERANCE = 0.05
#: a number as written in a trace cell (no hex, no digit separators, no words other than nan/inf)
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)\s*", re.IGNORECASE)
_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_REQUIRED_META = ("format", "schema_version", "name", "version", "device", "device_mem_total_mb",
                  "period_s", "source", "how_made", "licence", "columns")


class TraceError(ValueError):
    """A trace or dataset that cannot be used; the message names file, line and column."""

    def __init__(self, message: str, *, file: str | os.PathLike | None = None,
                 line: int | None = None, column: str | None = None):
        self.file = None if file is None else str(file)
        self.line = line
        self.column = column
        self.reason = message
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass
class Trace:
    """A validated time series of context samples.

    ``data`` holds only the columns the source had; :meth:`column` fills the
    schema's default for the others (``freq_cap_mhz`` defaults to +inf: no cap;
    ``bg_runnable`` to NaN: absent, estimate it from ``bg_cpu_util``). :meth:`has`
    says whether the source had a column.
    """

    name: str
    period_s: float | None
    data: dict[str, np.ndarray]
    mem_total_mb: float | None = None
    device: str | None = None
    path: Path | None = None
    meta: dict = dc_field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.data["t_s"])

    @property
    def columns(self) -> list[str]:
        return [n for n in schema.NAMES if n in self.data]

    @property
    def duration_s(self) -> float:
        return float(len(self) * (self.period_s or 0.0))

    def has(self, name: str) -> bool:
        """Whether the trace carries column ``name`` (a schema field; unknown names raise KeyError)."""
        schema.field(name)
        return name in self.data

    def column(self, name: str) -> np.ndarray:
        f = schema.field(name)
        if name in self.data:
            return self.data[name]
        return np.full(len(self), f.fill, dtype=np.float64)

    def resample(self, period_s: float) -> "Trace":
        """The same trace at another period: linear interpolation, hold for flags."""
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, not {period_s}")
        if self.period_s is not None and math.isclose(period_s, self.period_s, rel_tol=1e-9):
            return self
        t = self.data["t_s"]
        new_t = np.arange(t[0], t[-1] + 1e-9, period_s)
        out = {"t_s": new_t}
        for name, values in self.data.items():
            if name == "t_s":
                continue
            if schema.field(name).integral:
                idx = np.clip(np.searchsorted(t, new_t, side="right") - 1, 0, len(t) - 1)
                out[name] = values[idx]
            else:
                out[name] = np.interp(new_t, t, values)
        return Trace(self.name, period_s, out, self.mem_total_mb, self.device, self.path, dict(self.meta))

    def window(self, start: int, length: int) -> "Trace":
        """Rows ``start .. start+length`` (clipped), timestamps kept."""
        data = {k: v[start:start + length] for k, v in self.data.items()}
        return Trace(self.name, self.period_s, data, self.mem_total_mb, self.device, self.path, dict(self.meta))


@dataclass
class TraceDataset:
    """A validated trace dataset folder."""

    path: Path
    meta: dict
    splits: dict[str, list[Trace]]

    @property
    def name(self) -> str:
        return f"{self.meta['name']}-v{self.meta['version']}"

    @property
    def train(self) -> list[Trace]:
        return self.splits.get("train", [])

    @property
    def test(self) -> list[Trace]:
        return self.splits.get("test", [])

    @property
    def period_s(self) -> float:
        return float(self.meta["period_s"])

    @property
    def device(self) -> str:
        return str(self.meta["device"])

    @property
    def mem_total_mb(self) -> float:
        return float(self.meta["device_mem_total_mb"])


# --------------------------------------------------------------------------- parsing

def format_value(value: float) -> str:
    """Deterministic text for a cell: same value, same bytes, and reading it back gives the same float.

    Whole numbers are written without a decimal point; others as the shortest
    text that round-trips (``repr``). Writers that want short files round their
    values to a sensible resolution first (the synthesizer and the recorder do).
    """
    value = float(value)
    if not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf': refused by the validator with line and column
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def parse_csv(text: str, *, file: str | os.PathLike, period_s: float | None = None,
              expected_columns: Sequence[str] | None = None, regular: bool = True) -> dict[str, np.ndarray]:
    """Parse and validate the text of one trace file; raise :class:`TraceError` on the first problem.

    ``regular=False`` accepts any increasing timestamps (for :mod:`adascale_rl.context.resample`,
    which puts them on a regular grid); every other check still applies."""
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark some spreadsheet programs write
    if not text.strip():
        raise TraceError("the file is empty; a trace needs a header and at least one row", file=file, line=1)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise TraceError(f"malformed CSV ({exc})", file=file, line=1) from None
    seen = set()
    for name in header:
        if name not in schema.BY_NAME:
            raise TraceError(f"unknown column; known columns are {', '.join(schema.NAMES)}",
                             file=file, line=1, column=name)
        if name in seen:
            raise TraceError("column appears twice in the header", file=file, line=1, column=name)
        seen.add(name)
    for name in schema.REQUIRED:
        if name not in seen:
            raise TraceError("required column is missing from the header", file=file, line=1, column=name)
    if expected_columns is not None and list(header) != list(expected_columns):
        expected = list(expected_columns)
        bad = next((h for h, e in zip(header, expected) if h != e), None)
        if bad is None:
            bad = header[len(expected)] if len(header) > len(expected) else None
        raise TraceError(f"header {','.join(header)} does not match the columns {','.join(expected)} "
                         f"declared in schema.json", file=file, line=1, column=bad)
    fields = [schema.BY_NAME[n] for n in header]
    rows: list[list[float]] = []
    t_col = header.index("t_s")
    prev_t = None
    period = period_s
    blank_line = None  # first blank line seen; an error only if data follows it
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                if blank_line is None:
                    blank_line = line
                continue
            if blank_line is not None:
                raise TraceError("blank line inside the data", file=file, line=blank_line)
            if len(cells) != len(header):
                raise TraceError(f"expected {len(header)} cells, found {len(cells)}", file=file, line=line)
            row = []
            for f, cell in zip(fields, cells):
                if not _NUMBER.fullmatch(cell):
                    raise TraceError(f"{cell.strip()!r} is not a number", file=file, line=line, column=f.name)
                value = float(cell)
                problem = f.check(value)
                if problem:
                    raise TraceError(problem, file=file, line=line, column=f.name)
                row.append(value)
            t = row[t_col]
            if prev_t is not None:
                dt = t - prev_t
                if dt <= 0:
                    raise TraceError(f"timestamp {t:g} s does not increase (previous {prev_t:g} s)",
                                     file=file, line=line, column="t_s")
                if not regular:
                    pass
                elif period is None:
                    period = dt
                elif abs(dt - period) > PERIOD_TOLERANCE * period:
                    raise TraceError(f"timestamps are irregular: step {dt:g} s where the period is {period:g} s "
                                     f"(`adascale-rl traces resample` puts a trace on a regular grid)",
                                     file=file, line=line, column="t_s")
            prev_t = t
            rows.append(row)
    except csv.Error as exc:
        raise TraceError(f"malformed CSV ({exc})", file=file, line=reader.line_num) from None
    if not rows:
        raise TraceError("the file has a header but no data rows", file=file, line=2)
    array = np.asarray(rows, dtype=np.float64)
    return {name: array[:, i].copy() for i, name in enumerate(header)}


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TraceError(f"cannot be read ({exc.strerror})", file=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TraceError("is not UTF-8 text", file=path, line=line) from None


def load_trace(path: str | os.PathLike, *, period_s: float | None = None, mem_total_mb: float | None = None,
               device: str | None = None, expected_columns: Sequence[str] | None = None) -> Trace:
    """Load and validate a single trace CSV file."""
    path = Path(path)
    data = parse_csv(_read_text(path), file=path, period_s=period_s, expected_columns=expected_columns)
    if period_s is None and len(data["t_s"]) > 1:
        period_s = float(np.median(np.diff(data["t_s"])))
    return Trace(path.stem, period_s, data, mem_total_mb, device, path)


# --------------------------------------------------------------------------- datasets

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(root: Path) -> dict[str, str]:
    path = root / "MANIFEST"
    if not path.is_file():
        raise TraceError("the dataset has no MANIFEST file", file=path)
    entries: dict[str, str] = {}
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0]):
            raise TraceError("expected '<sha256>  <relative path>'", file=path, line=i)
        rel = parts[1].strip().lstrip("*")
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise TraceError(f"path {rel!r} leaves the dataset folder", file=path, line=i)
        if rel in entries:
            raise TraceError(f"path {rel!r} is listed twice", file=path, line=i)
        entries[rel] = parts[0]
    return entries


def write_manifest(root: Path, entries: Mapping[str, str]) -> None:
    text = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(entries.items()))
    atomic_write_text(root / "MANIFEST", text)


def read_meta(root: Path) -> dict:
    path = root / "schema.json"
    if not path.is_file():
        raise TraceError("the dataset has no schema.json", file=path)
    try:
        meta = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise TraceError(f"is not valid JSON ({exc.msg})", file=path, line=exc.lineno) from None
    if not isinstance(meta, dict):
        raise TraceError("must hold a JSON object", file=path, line=1)
    check_meta(meta, path)
    return meta


def check_meta(meta: Mapping, path: Path | str = "schema.json") -> None:
    for key in _REQUIRED_META:
        if key not in meta:
            raise TraceError(f"required key {key!r} is missing", file=path)
    if meta["format"] != FORMAT:
        raise TraceError(f"format is {meta['format']!r}, expected {FORMAT!r}", file=path)
    if not _is_int(meta["schema_version"]) or meta["schema_version"] != SCHEMA_VERSION:
        raise TraceError(f"unknown schema version {meta['schema_version']!r}; this adascale-rl reads version "
                         f"{SCHEMA_VERSION}", file=path)
    if meta["source"] not in SOURCES:
        raise TraceError(f"source is {meta['source']!r}, expected one of {', '.join(SOURCES)}", file=path)
    for key in ("period_s", "device_mem_total_mb"):
        v = meta[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise TraceError(f"{key} must be a positive number, not {v!r}", file=path)
    if not _is_int(meta["version"]) or meta["version"] < 1:
        raise TraceError(f"version must be a positive integer, not {meta['version']!r}", file=path)
    for key in ("name", "device", "how_made", "licence"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise TraceError(f"{key} must be a non-empty string, not {meta[key]!r}", file=path)
    if "files" in meta and (not isinstance(meta["files"], dict)
                            or not all(isinstance(v, dict) for v in meta["files"].values())):
        raise TraceError("files must be an object mapping each data file to an object", file=path)
    cols = meta["columns"]
    if not isinstance(cols, list) or not cols:
        raise TraceError("columns must be a non-empty list of {name, unit}", file=path)
    names = []
    for c in cols:
        if not isinstance(c, dict) or "name" not in c or "unit" not in c:
            raise TraceError(f"column entry {c!r} must be an object with name and unit", file=path)
        if c["name"] not in schema.BY_NAME:
            raise TraceError(f"unknown column {c['name']!r} in columns", file=path)
        if c["name"] in names:
            raise TraceError(f"column {c['name']!r} is listed twice in columns", file=path)
        if c["unit"] != schema.BY_NAME[c["name"]].unit:
            raise TraceError(f"column {c['name']!r} has unit {c['unit']!r}, the schema says "
                             f"{schema.BY_NAME[c['name']].unit!r}", file=path)
        names.append(c["name"])
    for req in schema.REQUIRED:
        if req not in names:
            raise TraceError(f"required column {req!r} is not in columns", file=path)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _dataset_files(root: Path) -> list[str]:
    files = []
    for split in SPLITS:
        d = root / split
        if d.is_dir():
            files += [f"{split}/{p.name}" for p in sorted(d.glob("*.csv"))]
    return files


def load_dataset(path: str | os.PathLike) -> TraceDataset:
    """Load a dataset folder, verifying every checksum and every row first."""
    root = Path(path)
    if not root.is_dir():
        raise TraceError("is not a dataset folder", file=root)
    meta = read_meta(root)
    manifest = read_manifest(root)
    files = _dataset_files(root)
    if not files:
        raise TraceError("the dataset has no CSV files under train/ or test/", file=root)
    for rel in files:
        if rel not in manifest:
            raise TraceError("the file is not listed in MANIFEST", file=root / rel)
    for rel, digest in manifest.items():
        f = root / rel
        if not f.is_file():
            raise TraceError("is listed in MANIFEST but missing", file=f)
        if sha256_file(f) != digest:
            raise TraceError("checksum mismatch: the file differs from its MANIFEST entry", file=f)
    columns = [c["name"] for c in meta["columns"]]
    splits: dict[str, list[Trace]] = {s: [] for s in SPLITS}
    per_file = meta.get("files", {})
    for rel in files:
        trace = load_trace(root / rel, period_s=float(meta["period_s"]),
                           mem_total_mb=float(meta["device_mem_total_mb"]), device=str(meta["device"]),
                           expected_columns=columns)
        trace.name = f"{meta['name']}-v{meta['version']}/{rel}"
        trace.meta = dict(per_file.get(rel, {}))
        splits[rel.split("/", 1)[0]].append(trace)
    return TraceDataset(root, meta, splits)


def csv_folder(path: Path) -> list[Path] | None:
    """The trace CSVs of a plain folder (no ``schema.json``, CSV files directly inside), else None."""
    if not path.is_dir() or (path / "schema.json").exists():
        return None
    files = sorted(f for f in path.glob("*.csv") if f.is_file())
    return files or None


def validate_path(path: str | os.PathLike) -> str:
    """Validate a dataset folder, a plain folder of trace CSVs or a single trace file; return a
    one-line summary."""
    p = Path(path)
    files = csv_folder(p)
    if files:
        # what bench, evaluate and train --traces accept as it is: every file a valid trace of 2+ rows
        traces = [load_trace(f) for f in files]
        for t in traces:
            if t.period_s is None:
                raise TraceError("a single-row trace has no period; record at least two rows", file=t.path)
        periods = sorted({round(t.period_s, 6) for t in traces})
        return (f"{p}: valid folder of {len(traces)} trace CSV file{'' if len(traces) == 1 else 's'} (no schema.json: "
                f"no device, no splits), {sum(len(t) for t in traces)} rows at {', '.join(f'{x:g}' for x in periods)} s; "
                f"bench and evaluate --traces take it as it is")
    if p.is_dir():
        ds = load_dataset(p)
        rows = sum(len(t) for s in ds.splits.values() for t in s)
        return (f"{p}: valid {ds.meta['source']} dataset {ds.name} for {ds.device}: "
                f"{len(ds.train)} train + {len(ds.test)} test traces, {rows} rows at {ds.period_s:g} s")
    if not p.exists():
        raise TraceError("no such file or folder", file=p)
    tr = load_trace(p)
    period = "unknown period" if tr.period_s is None else f"{tr.period_s:g} s"
    return f"{p}: valid trace, {len(tr)} rows at {period}, columns {','.join(tr.columns)}"


def make_meta(*, name: str, version: int, device: str, device_mem_total_mb: float, period_s: float,
              source: str, how_made: str, licence: str = "CC-BY-4.0", columns: Iterable[str] = schema.NAMES,
              **extra) -> dict:
    meta = {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "name": name, "version": version,
        "device": device, "device_mem_total_mb": device_mem_total_mb, "period_s": period_s,
        "source": source, "how_made": how_made, "licence": licence,
        "columns": [{"name": c, "unit": schema.BY_NAME[c].unit} for c in schema.NAMES if c in set(columns)],
    }
    meta.update(extra)
    check_meta(meta)
    return meta


def trace_to_csv(columns: Sequence[str], data: Mapping[str, np.ndarray]) -> str:
    buf = io.StringIO()
    buf.write(",".join(columns) + "\n")
    n = len(data["t_s"])
    cols = [data[c] for c in columns]
    for i in range(n):
        buf.write(",".join(format_value(float(c[i])) for c in cols) + "\n")
    return buf.getvalue()


def save_dataset(path: str | os.PathLike, meta: dict, splits: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
                 *, overwrite: bool = False) -> Path:
    """Write a dataset atomically: ``splits[split][file_stem] = {column: values}``.

    Every table is rendered with :func:`format_value` (same input, same bytes) and
    validated as the loader would, before anything is moved into place; the
    folder then appears complete or not at all. A bad table raises
    :class:`TraceError` naming ``<split>/<stem>.csv``, the line and the column.
    """
    root = Path(path)
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} exists; choose another --out or pass overwrite")
    check_meta(meta)
    columns = [c["name"] for c in meta["columns"]]
    rendered: dict[str, str] = {}
    for split, traces in splits.items():
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        for stem, data in traces.items():
            if not _STEM.fullmatch(stem):
                raise ValueError(f"trace name {stem!r} must be a plain file stem (letters, digits, '.', '_', '+', '-')")
            rel = f"{split}/{stem}.csv"
            missing = [c for c in columns if c not in data]
            if missing:
                raise TraceError("the table has no values for this column declared in schema.json",
                                 file=rel, column=missing[0])
            extra = [c for c in data if c not in columns]
            if extra:
                raise TraceError("the table has a column that schema.json does not declare", file=rel,
                                 column=extra[0])
            lengths = {c: len(np.asarray(data[c])) for c in columns}
            if len(set(lengths.values())) != 1:
                raise TraceError(f"columns have different lengths ({', '.join(f'{c}={n}' for c, n in lengths.items())})",
                                 file=rel)
            text = trace_to_csv(columns, data)
            parse_csv(text, file=rel, period_s=float(meta["period_s"]), expected_columns=columns)
            rendered[rel] = text
    if not rendered:
        raise ValueError("a dataset needs at least one trace in train or test")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: the dataset is a folder like any other
        digests = {}
        for rel, text in rendered.items():
            (tmp / rel).parent.mkdir(exist_ok=True)
            (tmp / rel).write_bytes(text.encode("utf-8"))
            digests[rel] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        atomic_write_text(tmp / "schema.json", json.dumps(meta, indent=2, sort_keys=False) + "\n")
        write_manifest(tmp, digests)
        if root.exists():
            old = root.with_name(f".{root.name}.old-{os.getpid()}")
            os.replace(root, old)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not root.exists():
            os.replace(old, root)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return root
