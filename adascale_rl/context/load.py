"""Real load on this machine: busy processes that take CPU, a process that holds memory.

Used by ``adascale-rl profile`` (latency under 0, 1, 2 and 2 x cores busy processes),
``benchmarks/contention.py`` and the live loop's load schedules. Every child is started by
a context manager that stops it on exit, on an error and on Ctrl-C (and on SIGTERM, which
:func:`adascale_rl._signals.sigterm_as_interrupt` turns into Ctrl-C for every ``adascale-rl`` command); and every
child watches its parent and ends by itself if the parent dies without stopping it (SIGKILL),
so no load outlives the program that started it.

The children stay in the parent's session (no ``setsid``): on Linux with autogroup
scheduling, processes of one session share one scheduling group, so the busy processes
compete with the app thread by thread, as background apps started by one user do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Sequence

#: a busy loop that checks every ~10-30 ms whether its parent is still the one that started it
_BUSY = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(200000):
        pass
"""

#: allocate and touch N MiB, then hold them (touching a page now and then) until the parent goes
_HOG = """
import os, sys, time
parent, mb = int(sys.argv[1]), int(sys.argv[2])
block = bytearray(mb * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
sys.stdout.write("ready\\n"); sys.stdout.flush()
while os.getppid() == parent:
    time.sleep(0.2)
"""


class _Children:
    """Start child processes; stop every one of them on exit, whatever happened."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, code: str, *args: str, stdout=None) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), *args], stdout=stdout,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGKILL)
                except (ProcessLookupError, OSError):
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed child always ends
                pass
        self.procs.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class BusyProcesses(_Children):
    """``n`` processes that each keep one core busy (a pure-Python loop), for as long as the block runs.

    ::

        with BusyProcesses(2):
            ...  # two busy processes run here
    """

    def __init__(self, n: int, settle_s: float = 0.2):
        super().__init__()
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"the number of busy processes must be a whole number >= 0, not {n!r}")
        self.n = n
        self.settle_s = settle_s

    def __enter__(self):
        try:
            for _ in range(self.n):
                self._spawn(_BUSY)
            if self.n:
                time.sleep(self.settle_s)  # let them start spinning
        except BaseException:
            self.stop()
            raise
        return self


class MemoryHog(_Children):
    """A process that allocates ``mb`` MiB, touches every page and holds them, for as long as the block runs."""

    def __init__(self, mb: int, timeout_s: float = 120.0):
        super().__init__()
        if not isinstance(mb, int) or isinstance(mb, bool) or mb < 0:
            raise ValueError(f"the memory hog's size must be a whole number of MiB >= 0, not {mb!r}")
        self.mb = mb
        self.timeout_s = timeout_s

    def __enter__(self):
        if self.mb == 0:
            return self
        try:
            p = self._spawn(_HOG, str(self.mb), stdout=subprocess.PIPE)
            deadline = time.monotonic() + self.timeout_s
            line = b""
            while time.monotonic() < deadline and p.poll() is None:
                line = p.stdout.readline()
                if line.strip() == b"ready":
                    break
            if p.poll() is not None:
                raise RuntimeError(f"the memory hog of {self.mb} MiB ended before it held its memory "
                                   f"(exit code {p.returncode}; not enough memory?)")
        except BaseException:
            self.stop()
            raise
        return self


def alive(pids: Sequence[int]) -> list[int]:
    """The pids of ``pids`` that still run (zombies excluded): what a test checks after a load is stopped."""
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                out.append(pid)
        except (OSError, IndexError):
            try:
                os.kill(pid, 0)
                out.append(pid)
            except OSError:
                pass
    return out


# --------------------------------------------------------------------------- load schedules

class ScheduleError(ValueError):
    """A load schedule that cannot be used; the message names the file and the segment."""


class Segment:
    """One stretch of a load schedule: busy processes, a memory hog and (for the live loop) the app's mode."""

    __slots__ = ("duration_s", "busy", "memory_mb", "request_rate_hz", "deadline_ms")

    def __init__(self, duration_s: float, busy: int = 0, memory_mb: int = 0, request_rate_hz: float | None = None,
                 deadline_ms: float | None = None):
        self.duration_s = float(duration_s)
        self.busy = int(busy)
        self.memory_mb = int(memory_mb)
        self.request_rate_hz = request_rate_hz
        self.deadline_ms = deadline_ms

    def load(self) -> tuple[int, int]:
        return self.busy, self.memory_mb

    def __repr__(self) -> str:
        return (f"Segment({self.duration_s:g} s, busy={self.busy}, memory_mb={self.memory_mb}"
                + (f", rate={self.request_rate_hz:g} Hz" if self.request_rate_hz is not None else "")
                + (f", deadline={self.deadline_ms:g} ms" if self.deadline_ms is not None else "") + ")")


_SEGMENT_KEYS = {"duration_s", "busy", "memory_mb", "request_rate_hz", "deadline_ms"}


def parse_schedule(doc, where: str = "schedule") -> tuple[str, str, list[Segment]]:
    """(name, description, segments) of a load schedule document; every problem is a :class:`ScheduleError`."""
    import math

    if not isinstance(doc, dict):
        raise ScheduleError(f"{where}: must be a YAML mapping with 'segments'")
    unknown = set(doc) - {"name", "description", "segments"}
    if unknown:
        raise ScheduleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: name, description, segments")
    segs = doc.get("segments")
    if not isinstance(segs, list) or not segs:
        raise ScheduleError(f"{where}: 'segments' must be a non-empty list")
    out = []
    for i, s in enumerate(segs):
        at = f"{where}: segment {i + 1}"
        if not isinstance(s, dict):
            raise ScheduleError(f"{at}: must be a mapping like {{duration_s: 30, busy: 2}}")
        bad = set(s) - _SEGMENT_KEYS
        if bad:
            raise ScheduleError(f"{at}: unknown key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(_SEGMENT_KEYS))}")

        def number(key, whole=False, low=0.0, strict=False, default=None):
            v = s.get(key, default)
            if v is None:
                return None
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > low if strict else v >= low) and (not whole or float(v).is_integer())
            if not ok:
                kind = "a whole number" if whole else "a number"
                raise ScheduleError(f"{at}: {key} must be {kind} {'>' if strict else '>='} {low:g}, not {v!r}")
            return int(v) if whole else float(v)

        out.append(Segment(number("duration_s", strict=True, default=s.get("duration_s", "missing")),
                           number("busy", whole=True, default=0), number("memory_mb", whole=True, default=0),
                           number("request_rate_hz", strict=True), number("deadline_ms", strict=True)))
    name = doc.get("name") if isinstance(doc.get("name"), str) else where
    return name, str(doc.get("description", "")), out


class LoadSchedule:
    """A load schedule from ``envs/loads/<name>.yaml`` (or any YAML file)::

        name: quiet-to-oversubscribed
        description: one line
        segments:
          - {duration_s: 30}                            # quiet
          - {duration_s: 30, busy: 2}                   # two busy processes
          - {duration_s: 30, busy: 4, memory_mb: 4096}  # and a process holding 4 GiB
          - {duration_s: 30, request_rate_hz: 400, deadline_ms: 2.5}   # the app changes mode (live loop)
    """

    def __init__(self, name: str, segments: Sequence[Segment], description: str = "", path=None):
        self.name = name
        self.segments = list(segments)
        self.description = description
        self.path = path

    @classmethod
    def load(cls, name_or_path) -> "LoadSchedule":
        from pathlib import Path

        from adascale_rl import paths
        from adascale_rl._files import read_data

        p = Path(name_or_path)
        if not (p.suffix in (".yaml", ".yml") and p.exists()):
            shipped = paths.envs_dir() / "loads" / f"{name_or_path}.yaml"
            if not shipped.exists():
                known = sorted(f.stem for f in (paths.envs_dir() / "loads").glob("*.yaml"))
                raise ScheduleError(f"unknown load schedule {name_or_path!r}: not a YAML file, and the shipped ones "
                                    f"are {', '.join(known) or 'none'}")
            p = shipped
        name, description, segs = parse_schedule(read_data(p, ScheduleError), str(p))
        return cls(name, segs, description, p)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    def at(self, t_s: float) -> Segment:
        """The segment in effect ``t_s`` seconds after the start (the last one after the end)."""
        end = 0.0
        for s in self.segments:
            end += s.duration_s
            if t_s < end:
                return s
        return self.segments[-1]

    def describe(self) -> str:
        """The schedule in one line: '0-30 s quiet; 30-60 s 2 busy; ...'."""
        parts, t = [], 0.0
        for s in self.segments:
            what = []
            if s.busy:
                what.append(f"{s.busy} busy process{'es' if s.busy != 1 else ''}")
            if s.memory_mb:
                what.append(f"{s.memory_mb} MiB held")
            if s.request_rate_hz is not None or s.deadline_ms is not None:
                what.append(f"app at {s.request_rate_hz or '-'} Hz / {s.deadline_ms or '-'} ms")
            parts.append(f"{t:g}-{t + s.duration_s:g} s {', '.join(what) or 'quiet'}")
            t += s.duration_s
        return "; ".join(parts)


#: a segment whose load came in place more than this many seconds, and more than :data:`LATE_SHARE` of its length,
#: after its start is named by :meth:`ScheduleRunner.shortfalls` (derived: two samples of ``record``'s default
#: one-second interval; a tenth of a segment shifts its mean by a tenth)
LATE_S = 2.0
LATE_SHARE = 0.1


class ScheduleRunner:
    """Play a :class:`LoadSchedule` in the background: at each segment's start, stop the previous
    segment's children and start this one's. Every child is stopped on exit (also on an error and
    Ctrl-C) and ends by itself if this process dies.

    A memory hog takes seconds to touch its memory, a minute beside busy processes that share its cores; the
    schedule keeps its clock meanwhile, so the segments after it start late or not at all. :attr:`in_place` holds
    when each segment's load was in place (seconds from the start) and :meth:`shortfalls` names the segments that
    did not hold their span, for ``record`` and ``run`` to say so.

    ::

        with ScheduleRunner(LoadSchedule.load("quiet-to-oversubscribed")) as run:
            ...  # run.segment() is the segment in effect now; run.pids() the children running
    """

    def __init__(self, schedule: LoadSchedule, clock=time.monotonic):
        import threading

        self.schedule = schedule
        self.clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._current: tuple[BusyProcesses, MemoryHog] | None = None
        self._index = -1
        self.t0 = None
        self.error: BaseException | None = None
        self.in_place: list[float | None] = [None] * len(schedule.segments)
        self.stopped_s: float | None = None

    def segment(self) -> Segment:
        return self.schedule.segments[max(self._index, 0)]

    def elapsed_s(self) -> float:
        return 0.0 if self.t0 is None else self.clock() - self.t0

    def pids(self) -> list[int]:
        with self._lock:
            if self._current is None:
                return []
            return self._current[0].pids + self._current[1].pids

    def _switch(self, i: int) -> None:
        """Make the load segment ``i``'s: what carries over from the segment before keeps running (the same number
        of busy processes, a memory hog of the same size), the rest is stopped and started anew, the busy processes
        before the memory hog. A hog takes seconds to touch its memory (the live bench's run queue read ~1 for ~9 s
        after a 4 GiB hog started, its timeline.png, docs/LIVE.md) and is
        waited for; busy processes started after it, as before 2026-12-02, left the segment without them for that
        long (the live runs' run queue read ~1 where the schedule said 4), and a hog carried over was filled again."""
        seg = self.schedule.segments[i]

        def running(children: _Children) -> bool:
            return all(p.poll() is None for p in children.procs)

        with self._lock:
            prev = self._current
            keep_busy = prev is not None and prev[0].n == seg.busy and running(prev[0])
            keep_hog = prev is not None and prev[1].mb == seg.memory_mb and running(prev[1])
            busy = prev[0] if keep_busy else BusyProcesses(seg.busy, settle_s=0.0)
            hog = prev[1] if keep_hog else MemoryHog(seg.memory_mb)
            self._current = (busy, hog)
            self._index = i
        if prev is not None:
            if not keep_busy:
                prev[0].stop()
            if not keep_hog:
                prev[1].stop()
        if not keep_busy and not self._stop.is_set():  # stop() may have come meanwhile: start nothing after it
            busy.__enter__()
        if not keep_hog and not self._stop.is_set():
            hog.__enter__()

    def _run(self) -> None:
        try:
            ends, t = [], 0.0
            for s in self.schedule.segments:
                t += s.duration_s
                ends.append(t)
            for i, end in enumerate(ends):
                if self._stop.is_set():
                    return
                if i > 0:
                    self._switch(i)
                    with self._lock:  # stop() notes its time under the lock: no segment in place after it
                        if not self._stop.is_set():
                            self.in_place[i] = self.elapsed_s()
                self._stop.wait(max(0.0, self.t0 + end - self.clock()))
        except BaseException as exc:  # surfaced by stop(); the children are stopped there
            self.error = exc

    def __enter__(self):
        import threading

        try:
            self._switch(0)
        except BaseException:
            self.stop()
            raise
        # the schedule's clock starts once its first segment's load is in place (a memory hog is waited for): the
        # clock of the caller, who starts its own right after entering (record's samples, run's periods)
        self.t0 = self.clock()
        self.in_place[0] = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True, name="load-schedule")
        self._thread.start()
        return self

    def shortfalls(self) -> list[str]:
        """One sentence per segment, begun before the run stopped (or by now), whose load came in place late
        (:data:`LATE_S`, :data:`LATE_SHARE`), after the segment's end, or not before the run stopped; [] when every
        segment held its span."""
        with self._lock:
            until = self.stopped_s if self.stopped_s is not None else self.elapsed_s()
            in_place = list(self.in_place)
        out, start = [], 0.0
        for i, seg in enumerate(self.schedule.segments):
            end = start + seg.duration_s
            if start >= until:
                break
            at = in_place[i]
            what = f"load segment {i} ({start:g}-{end:g} s: {seg.busy} busy, {seg.memory_mb} MiB)"
            if at is None:
                out.append(f"{what} was not in place before the run stopped at {until:.1f} s")
            elif at >= end:
                out.append(f"{what} never held: its load came in place at {at:.1f} s, after the segment's end "
                           f"(the load before it took that long to start)")
            elif at - start > max(LATE_S, LATE_SHARE * seg.duration_s):
                out.append(f"{what} came in place {at - start:.1f} s late, at {at:.1f} s "
                           f"({(at - start) / seg.duration_s:.0%} of the segment)")
            start = end
        return out

    def stop(self) -> None:
        with self._lock:
            if self.stopped_s is None and self.t0 is not None:
                self.stopped_s = self.elapsed_s()
            self._stop.set()
        if self._thread is not None:  # a segment's switch may be waiting for its memory hog to touch its memory
            self._thread.join(timeout=MemoryHog(0).timeout_s + 30.0)
        with self._lock:
            cur, self._current = self._current, None
        if cur is not None:
            cur[0].stop()
            cur[1].stop()

    def __exit__(self, *exc):
        self.stop()
        if self.error is not None and exc[0] is None:
            raise RuntimeError(f"the load schedule {self.schedule.name} failed: {self.error}") from self.error
        return False
