"""Record the live resource context of this machine into a trace dataset.

``adascale-rl record --duration 600 --interval 1 --out traces/mine-v1`` samples
the :class:`~adascale_rl.context.monitor.Monitor` on a fixed schedule and writes
one CSV row per sample. The dataset is valid at every moment:

* samples are scheduled on the monotonic clock (sample *k* is taken at
  ``start + (k+1) * interval`` and describes the interval before it) and carry the
  nominal timestamp ``k * interval``, so timestamps are exactly regular even when a
  sample is late;
* after every row the file is flushed and MANIFEST is rewritten atomically with
  the file's running sha256;
* Ctrl-C (SIGINT) and SIGTERM end the recording after the current row, leaving a
  valid dataset of what was recorded.

Only the fields the machine actually has at the start become columns; missing
sensors are absent columns (the schema's defaults apply). Where procfs gives the
run queue (Linux, Android), ``bg_runnable`` is recorded as the mean of samples
taken at :data:`~adascale_rl.context.monitor.RUNNABLE_HZ` by the monitor's sampler
thread, which runs for the length of the recording. If a sensor that was
present stops answering, its last value is carried forward and the recorder says
so at the end (and in ``schema.json``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from adascale_rl.context import schema
from adascale_rl.context.monitor import RUNNABLE_HZ, Monitor
from adascale_rl.context.traces import (
    SPLITS, atomic_write_text, format_value, load_dataset, make_meta, read_manifest, read_meta,
    write_manifest,
)

#: shortest sampling period the recorder accepts (CPU counters tick at 10 ms)
MIN_INTERVAL_S = 0.05
LICENCE = "CC-BY-4.0"
#: decimals kept per column: finer than the sensors resolve, short enough for small files
DECIMALS = {"t_s": 6, "bg_cpu_util": 4, "bg_runnable": 2, "mem_avail_mb": 2, "freq_cap_mhz": 1, "ambient_temp_c": 1,
            "battery_pct": 1, "plugged": 0, "request_rate_hz": 3, "deadline_ms": 3}


class RecordError(ValueError):
    """A recording that cannot start; one sentence naming the folder or value at fault."""


@dataclass
class RecordResult:
    path: Path                       # the CSV written
    dataset: Path
    rows: int
    planned_rows: int
    columns: list[str]
    interrupted: str | None = None   # name of the signal that ended the recording early
    carried_forward: dict[str, int] = field(default_factory=dict)
    late_samples: int = 0            # samples taken more than half an interval late
    load_shortfalls: list[str] = field(default_factory=list)  # segments of the load schedule that did not hold


# --------------------------------------------------------------------------- host description

def host_id() -> str:
    """A stable, hostname-free id for this kind of machine, e.g. ``local-x86`` or ``local-macos-arm64``."""
    m = platform.machine().lower()
    arch = {"x86_64": "x86", "amd64": "x86", "i386": "x86-32", "i686": "x86-32", "aarch64": "arm64",
            "arm64": "arm64", "armv7l": "arm", "armv6l": "arm"}.get(m, re.sub(r"[^a-z0-9]+", "-", m) or "unknown")
    if sys.platform.startswith("linux"):
        osname = "android-" if "ANDROID_ROOT" in os.environ else ""
    elif sys.platform == "darwin":
        osname = "macos-"
    elif sys.platform.startswith("win"):
        osname = "windows-"
    else:
        osname = re.sub(r"[^a-z0-9]+", "-", sys.platform.lower()) + "-"
    return f"local-{osname}{arch}"


def cpu_model() -> str | None:
    """The CPU's name as /proc/cpuinfo gives it (x86 "model name", ARM boards' "Hardware"/"Model"), else the
    platform's; None when nothing names it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_description() -> str:
    """What the machine is, without its hostname or any user name."""
    vm = psutil.virtual_memory()
    phys = psutil.cpu_count(logical=False)
    parts = [f"{platform.system()} {platform.release()} on {platform.machine()}"]
    model = cpu_model()
    if model:
        parts.append(f"CPU {model}")
    parts.append(f"{psutil.cpu_count()} logical CPUs" + (f" ({phys} physical)" if phys else ""))
    parts.append(f"{vm.total / 2**30:.1f} GiB RAM")
    parts.append(f"Python {platform.python_version()}, psutil {psutil.__version__}")
    return ", ".join(parts)


def _split_name(folder: Path) -> tuple[str, int]:
    m = re.fullmatch(r"(.+)-v(\d+)", folder.name)
    if m and int(m.group(2)) >= 1:
        return m.group(1), int(m.group(2))
    return folder.name, 1


def _how_made(meta: dict) -> str:
    base = (f"Recorded with `adascale-rl record` (adascale_rl.context.recorder): psutil sampled on a fixed "
            f"monotonic schedule every {meta['period_s']:g} s, nominal timestamps k*period; each row's CPU "
            f"figure covers the interval before it; bg_cpu_util = total CPU utilisation minus the recorder's "
            f"own share; mem_avail_mb = virtual_memory().available. Machine: {meta['machine']}. Columns are the "
            f"fields this machine exposes; absent columns take the schema defaults.")
    files = meta.get("files", {})
    if any(c["name"] == "bg_runnable" for c in meta["columns"]):
        rates = {e.get("bg_runnable_hz") for e in files.values()}
        how = ("one instantaneous sample per row" if rates == {None} else
               f"the mean of the samples a background thread took at {rates.pop():g} Hz over the interval before "
               f"the row" if len(rates) == 1 else "sampled at the rate each file gives as bg_runnable_hz")
        base += (" bg_runnable = the background run queue: /proc/stat procs_running minus the recorder's own "
                 f"threads in state R (/proc/self/task/*/stat), clipped at 0; {how}.")
    notes = []
    for rel, entry in sorted(files.items()):
        status = "recording" if entry.get("rows") is None else f"{entry['rows']} rows"
        if entry.get("interrupted"):
            status += f", stopped early by {entry['interrupted']}"
        note = entry.get("note") or "no note given"
        notes.append(f"{rel} ({entry.get('start_utc', '?')}, {status}): {note}")
    procedure = meta.get("procedure")  # free text a maintainer adds: the load schedule, the script used
    return base + (f" Procedure: {procedure}" if procedure else "") + (" Recordings: " + " | ".join(notes) if notes else "")


# --------------------------------------------------------------------------- stop signals

class _StopFlag:
    """SIGINT/SIGTERM set a flag instead of killing the process (main thread only)."""

    def __init__(self):
        self.signal_name: str | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def sleep_until(self, deadline: float) -> None:
        while self.signal_name is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


# --------------------------------------------------------------------------- recording

def _prepare_dataset(root: Path, period_s: float, columns: list[str], device: str) -> tuple[dict, dict, bool]:
    """Open (checking compatibility) or start the dataset; return (meta, manifest, is_new)."""
    if root.exists() and not root.is_dir():
        raise RecordError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not (root / "schema.json").exists():
            raise RecordError(f"{root} is a non-empty folder without schema.json; choose a new or empty --out")
        meta = read_meta(root)
        if any((root / s).glob("*.csv") for s in SPLITS if (root / s).is_dir()):
            load_dataset(root)  # refuse to append to a dataset that is already broken
        manifest = read_manifest(root) if (root / "MANIFEST").exists() else {}
        if meta["source"] != "recorded":
            raise RecordError(f"{root} holds a {meta['source']} dataset; record into a recorded one")
        if meta["device"] != device:
            raise RecordError(f"{root} was recorded on device {meta['device']!r}, this machine is {device!r}")
        if not math.isclose(float(meta["period_s"]), period_s, rel_tol=1e-9):
            raise RecordError(f"{root} has period {meta['period_s']:g} s; record with --interval "
                              f"{meta['period_s']:g} to append to it")
        have = [c["name"] for c in meta["columns"]]
        if have != columns:
            raise RecordError(f"{root} has columns {','.join(have)} but this machine provides "
                              f"{','.join(columns)}; record into a new folder")
        return meta, manifest, False
    name, version = _split_name(root)
    meta = make_meta(name=name, version=version, device=device,
                     device_mem_total_mb=round(psutil.virtual_memory().total / 2**20, 1), period_s=period_s,
                     source="recorded", how_made="(filled in below)", licence=LICENCE, columns=columns,
                     machine=machine_description(), files={})
    return meta, {}, True


def _write_meta(root: Path, meta: dict) -> None:
    meta["how_made"] = _how_made(meta)
    atomic_write_text(root / "schema.json", json.dumps(meta, indent=2) + "\n")


def record(out: str | os.PathLike, duration_s: float, interval_s: float, split: str = "train",
           name: str | None = None, note: str = "", progress: bool = True, *,
           monitor: Monitor | None = None, load=None) -> RecordResult:
    """Record ``duration_s`` seconds of this machine's context into the dataset folder ``out``.

    Creates the dataset (``schema.json``, ``MANIFEST``, ``<split>/<name>.csv``) or
    appends a new file to an existing recorded dataset with the same device,
    period and columns. Returns what was written; an interrupted recording
    (SIGINT/SIGTERM) returns normally with ``interrupted`` set. With ``load`` (a
    :class:`adascale_rl.context.load.LoadSchedule`), the schedule's busy processes and
    memory hog run beside the recording from its first interval on (child processes,
    stopped when the recording ends, however it ends); the file's note gives the schedule.
    """
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise RecordError(f"--duration must be a positive number of seconds, not {duration_s!r}")
    if not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s) and interval_s >= MIN_INTERVAL_S):
        raise RecordError(f"--interval must be at least {MIN_INTERVAL_S:g} s, not {interval_s!r}")
    if split not in SPLITS:
        raise RecordError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    planned = int(math.floor(duration_s / interval_s + 1e-9))
    if planned < 1:
        raise RecordError(f"--duration {duration_s:g} s is shorter than one --interval ({interval_s:g} s)")
    root = Path(out)
    monitor = monitor or Monitor(runnable_hz=RUNNABLE_HZ)
    device = host_id()
    columns = ["t_s"] + [n for n in monitor.available() if n in schema.BY_NAME]
    start_utc = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    stem = name or f"{device}-{start_utc.strftime('%Y%m%dT%H%M%SZ')}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", stem):
        raise RecordError(f"--name {stem!r} must be a plain file stem (letters, digits, '.', '_', '+', '-')")
    rel = f"{split}/{stem}.csv"
    meta, manifest, is_new = _prepare_dataset(root, float(interval_s), columns, device)
    root_created = not root.exists()
    csv_path = root / rel
    if csv_path.exists() or rel in manifest:
        raise RecordError(f"{csv_path} already exists; choose another --name")

    if load is not None:
        schedule = f"load schedule {load.name}: {load.describe()}"
        note = f"{note}; {schedule}" if note else schedule
    entry = {"split": split, "start_utc": start_utc.isoformat().replace("+00:00", "Z"), "interval_s": interval_s,
             "planned_rows": planned, "rows": None, "note": note}
    if "bg_runnable" in columns:  # samples per second behind each row's mean; None: one sample per row
        entry["bg_runnable_hz"] = monitor.runnable_hz
    started_sampler = False
    result = RecordResult(csv_path, root, 0, planned, columns)
    last: dict[str, float] = {}
    digest = hashlib.sha256()
    fh = None
    bar = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / split).mkdir(exist_ok=True)
        meta.setdefault("files", {})[rel] = entry
        _write_meta(root, meta)
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=planned, unit="sample", desc=f"recording {rel}", file=sys.stderr,
                       dynamic_ncols=True, leave=True)
        with _StopFlag() as stop, _load_runner(load) as runner:
            if "bg_runnable" in columns and monitor.runnable_hz is not None and not monitor.sampling:
                monitor.start()
                started_sampler = True
            t0 = time.monotonic()
            monitor.read()  # start the first CPU interval (and run-queue mean) now
            for k in range(planned):
                target = t0 + (k + 1) * interval_s
                stop.sleep_until(target)
                if stop.signal_name is not None:
                    break
                if time.monotonic() - target > 0.5 * interval_s:
                    result.late_samples += 1
                values = monitor.sample()
                cells = [format_value(round(k * interval_s, DECIMALS["t_s"]))]
                for c in columns[1:]:
                    v = values.get(c)
                    if v is None or not math.isfinite(v):
                        if c not in last:  # cannot happen for the first row: columns come from available()
                            raise RecordError(f"sensor {c} gave no reading at the first sample")
                        v = last[c]
                        result.carried_forward[c] = result.carried_forward.get(c, 0) + 1
                    f = schema.BY_NAME[c]
                    v = min(max(round(float(v), DECIMALS[c]), f.low), f.high)
                    last[c] = v
                    cells.append(format_value(v))
                line = ",".join(cells) + "\n"
                if fh is None:
                    header = ",".join(columns) + "\n"
                    fh = open(csv_path, "x", encoding="utf-8", newline="")
                    fh.write(header)
                    digest.update(header.encode())
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
                digest.update(line.encode())
                manifest[rel] = digest.hexdigest()
                write_manifest(root, manifest)
                result.rows += 1
                if bar is not None:
                    bar.update(1)
            result.interrupted = stop.signal_name
        if runner is not None:  # after the with: the runner has stopped, so its account is complete
            result.load_shortfalls = runner.shortfalls()
    finally:
        if started_sampler:
            monitor.stop()
        if bar is not None:
            bar.close()
        if fh is not None:
            fh.close()
        if result.rows == 0:
            # nothing recorded: leave no header-only file and no dangling entries behind
            csv_path.unlink(missing_ok=True)
            meta.get("files", {}).pop(rel, None)
            if root_created:
                shutil.rmtree(root, ignore_errors=True)
            elif is_new:
                (root / "schema.json").unlink(missing_ok=True)
                (root / "MANIFEST").unlink(missing_ok=True)
                if (root / split).is_dir() and not any((root / split).iterdir()):
                    (root / split).rmdir()
            elif root.is_dir():
                _write_meta(root, meta)
        else:
            entry.update(rows=result.rows, interrupted=result.interrupted,
                         carried_forward=result.carried_forward or None, late_samples=result.late_samples)
            if result.load_shortfalls:  # the note gives the schedule as written; this, what it did
                entry["load_shortfalls"] = result.load_shortfalls
            _write_meta(root, meta)
    return result


def _load_runner(load):
    import contextlib

    if load is None:
        return contextlib.nullcontext()
    from adascale_rl.context.load import ScheduleRunner

    return ScheduleRunner(load)


def record_command(args) -> int:
    """``adascale-rl record``: the CLI front of :func:`record`."""
    load = None
    if getattr(args, "load", None):
        from adascale_rl.context.load import LoadSchedule

        load = LoadSchedule.load(args.load)
    duration = args.duration if args.duration is not None else (load.duration_s if load is not None else None)
    if duration is None:
        raise RecordError("give --duration S (or --load SCHEDULE, whose length is the default)")
    result = record(args.out, duration, args.interval, split=args.split, name=args.name, note=args.note,
                    progress=not args.no_progress, load=load)
    if result.rows == 0:
        print(f"stopped by {result.interrupted or 'request'} before the first sample; nothing was written",
              file=sys.stderr)
        return 130 if result.interrupted == "SIGINT" else 1
    msg = f"wrote {result.rows} row{'' if result.rows == 1 else 's'} ({', '.join(result.columns)}) to {result.path}"
    if result.interrupted:
        msg += f"; stopped early by {result.interrupted} after {result.rows} of {result.planned_rows} samples, " \
               f"the dataset holds what was recorded"
    print(msg)
    for c, n in result.carried_forward.items():
        print(f"note: {c} gave no reading for {n} samples; its last value was carried forward", file=sys.stderr)
    if result.late_samples:
        print(f"note: {result.late_samples} samples were taken more than half an interval late "
              f"(timestamps stay nominal)", file=sys.stderr)
    for s in result.load_shortfalls:
        print(f"note: {s}; the recording's note gives the schedule as written (schema.json keeps this too)",
              file=sys.stderr)
    return 0
