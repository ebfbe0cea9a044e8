"""The live resource context of this machine, read from procfs on Linux and with psutil elsewhere.

:class:`Monitor` turns the operating system's counters into the context fields of
:mod:`adascale_rl.context.schema`. On Linux and Android the CPU times and the available
memory are parsed from procfs directly, one read of each file (``/proc/stat``'s aggregate
``cpu`` line, ``/proc/<pid>/stat``'s utime and stime, ``/proc/meminfo``'s MemAvailable), in
the units psutil gives (seconds, bytes) and at a fraction of its cost; psutil reads the same
files, and is used instead on other platforms and whenever a file is unreadable or
malformed. These files, and the run-queue sampler's, are kept open and re-read with one
``pread`` each (:class:`ProcFile`, :class:`ThreadStates`). What the platform does not expose is reported
as ``None`` -- a VM has no battery, no temperature sensor and often no cpufreq --
never as an invented value. ``request_rate_hz`` and ``deadline_ms`` belong to the
app, not to the machine, so the monitor always reports them as ``None``;
``ambient_temp_c`` cannot be measured from inside a device (the SoC sensor reads
the chip, not the air), so it is ``None`` too and the chip temperature is given
separately as ``soc_temp_c``.

``bg_cpu_util`` is the share of total CPU capacity used by *other* processes over
the interval since the previous reading: total utilisation minus the monitored
process's own share (its CPU time over all cores' CPU time, i.e. psutil's
``Process.cpu_percent() / (100 * ncpu)``), clipped to [0, 1].

``bg_runnable`` is the background run queue, which keeps counting where
``bg_cpu_util`` saturates at 1 (Linux and Android only: it comes from procfs). One
sample is ``procs_running`` of ``/proc/stat`` (all runnable threads, the reading
thread included) minus the monitored process's threads in state ``R``
(``/proc/<pid>/task/*/stat``), minus the reading thread itself when it is not in
the monitored process, clipped at 0. One sample is an instant, and the queue
moves between 0 and N within milliseconds, so a :class:`Monitor` given
``runnable_hz`` samples it in a daemon thread between :meth:`Monitor.start` and
:meth:`Monitor.stop` (or inside ``with``) and each read reports the mean of the
samples since the previous read; without the sampler running a read takes one
sample. Where procfs does not tell (macOS, Windows, Android apps denied
``/proc/stat``) it is ``None``.
"""

from __future__ import annotations

import glob
import math
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import psutil

from adascale_rl.context import schema

#: sysfs folder holding the per-CPU cpufreq directories on Linux
SYSFS_CPU = "/sys/devices/system/cpu"
#: procfs root holding stat, meminfo, <pid>/stat and <pid>/task/<tid>/stat (Linux, Android)
PROC = "/proc"
#: run-queue samples per second for live use (the recorder's rate): 20 per 1 s period.
#: Derivation: one sample (:meth:`Monitor.bg_runnable_now`) costs ~20 us plus ~4 us per
#: thread of the monitored process (measured on the 2-vCPU dev VM, files kept open: median
#: 25 us at 2 threads, 0.18 ms at 41), so 20 Hz takes under 1 % of one core for an app with
#: fewer than 100 threads; the mean of 20 independent samples has a standard error of
#: 1/sqrt(20) = 0.22 of one sample's.
RUNNABLE_HZ = 20.0
#: clock ticks per second: the unit of procfs CPU times (psutil divides by the same ``SC_CLK_TCK``)
try:
    CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not a POSIX system: procfs is not read
    CLOCK_TICKS = 100
#: the fields of /proc/stat's cpu line psutil reads (user nice system idle iowait irq softirq steal guest
#: guest_nice); a newer kernel's extra fields are ignored by both
_CPU_FIELDS = 10
_MEM_AVAILABLE = re.compile(rb"^MemAvailable:[ \t]+(\d+) kB$", re.MULTILINE)
_MEM_TOTAL = re.compile(rb"^MemTotal:[ \t]+(\d+) kB$", re.MULTILINE)
#: highest sampling rate accepted (assumption): above ~1 kHz the sampler's own reads
#: (tens of us each) would take a visible share of a core and perturb what it measures
MAX_RUNNABLE_HZ = 1000.0
_PROCS_RUNNING = re.compile(rb"^procs_running[ \t]+(\d+)[ \t]*$", re.MULTILINE)
#: temperature sensors that read the CPU/SoC die, most specific first (psutil chip names)
_SOC_SENSORS = ("cpu_thermal", "cpu-thermal", "soc_thermal", "coretemp", "k10temp", "zenpower",
                "cpu0_thermal", "tsens_tz_sensor0", "thermal_zone0", "acpitz")
#: context fields the machine itself can tell (the others are the app's)
MACHINE_FIELDS = ("bg_cpu_util", "bg_runnable", "mem_avail_mb", "freq_cap_mhz", "battery_pct", "plugged")
#: the app's fields and the unmeasurable ambient temperature: always None from the monitor
NOT_MEASURED = ("ambient_temp_c", "request_rate_hz", "deadline_ms")


@dataclass(frozen=True)
class Reading:
    """One reading of the live context, richer than a schema row.

    Context fields use the schema names; the extra keys (``freq_mhz``,
    ``soc_temp_c``, ``cpu_util``, ``self_cpu_util``, ``interval_s``) are
    measurements that are not trace columns. ``None`` means the platform does
    not expose the quantity.
    """

    time_s: float                    # time.monotonic() when read
    interval_s: float                # span the CPU figures cover
    bg_cpu_util: float               # other processes' share of all cores, 0..1
    cpu_util: float                  # total utilisation of all cores, 0..1
    self_cpu_util: float             # the monitored process's share, 0..1
    bg_runnable: float | None        # runnable threads other than the app's (mean of the samples), or None
    mem_avail_mb: float              # MiB
    freq_cap_mhz: float | None       # scaling_max_freq (or the hardware maximum)
    freq_mhz: float | None           # current clock
    battery_pct: float | None
    plugged: float | None            # 1.0 on external power, 0.0 on battery
    soc_temp_c: float | None         # chip temperature (not ambient)
    ambient_temp_c: None = None
    request_rate_hz: None = None
    deadline_ms: None = None

    def context(self) -> dict[str, float | None]:
        """The schema's context fields (all but ``t_s``), ``None`` where missing."""
        d = asdict(self)
        return {name: d[name] for name in schema.NAMES if name != "t_s"}

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def parse_procs_running(stat: bytes) -> int | None:
    """The ``procs_running`` count in the text of ``/proc/stat``, or None if it has no well-formed one."""
    m = _PROCS_RUNNING.search(stat)
    return int(m.group(1)) if m else None


def parse_cpu_times(stat: bytes) -> tuple[float, float] | None:
    """(all cores' CPU seconds, idle seconds) from the aggregate ``cpu`` line of ``/proc/stat``, or None if it
    has no well-formed one.

    As psutil's ``cpu_times()`` adds up: the first ten fields in clock ticks over ``SC_CLK_TCK``;
    guest and guest_nice are left out of the total (the kernel already counts them in user and
    nice); idle is idle + iowait.
    """
    end = stat.find(b"\n")
    line = stat if end < 0 else stat[:end]
    if not line.startswith(b"cpu "):
        return None
    fields = line.split()[1:_CPU_FIELDS + 1]
    if len(fields) < 4 or not all(f.isdigit() for f in fields):
        return None
    ticks = [int(f) for f in fields]
    total = sum(ticks) - sum(ticks[8:10])  # guest, guest_nice
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle, iowait
    return total / CLOCK_TICKS, idle / CLOCK_TICKS


def parse_process_cpu_s(stat: bytes) -> float | None:
    """A process's own CPU seconds (utime + stime) from the text of ``/proc/<pid>/stat``, or None if malformed.

    The fields are counted after the *last* ``)``, as the command name may hold spaces and
    parentheses; utime and stime are the 14th and 15th fields of proc(5), in clock ticks
    (psutil's ``Process.cpu_times()`` user + system).
    """
    j = stat.rfind(b")")
    if j < 0:
        return None
    fields = stat[j + 1:].split()
    if len(fields) < 13 or not (fields[11].isdigit() and fields[12].isdigit()):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def parse_mem_available(meminfo: bytes) -> int | None:
    """MemAvailable of ``/proc/meminfo`` in bytes (kB x 1024, as psutil), or None when it is missing, 0 or above
    MemTotal (cases where psutil estimates the figure instead; the caller asks psutil)."""
    m = _MEM_AVAILABLE.search(meminfo)
    t = _MEM_TOTAL.search(meminfo)
    if m is None or t is None:
        return None
    avail, total = int(m.group(1)), int(t.group(1))
    if avail <= 0 or avail > total:
        return None
    return avail * 1024


def task_state(stat: bytes) -> str | None:
    """The one-letter state of a ``/proc/<pid>/task/<tid>/stat`` text (``R`` = runnable), or None if malformed.

    The state follows the command name, which is in parentheses and may itself hold
    spaces and parentheses, so it is found after the *last* ``)``.
    """
    j = stat.rfind(b")")
    if j < 0 or stat[j + 1:j + 2] != b" ":
        return None
    c = stat[j + 2:j + 3]
    return c.decode("ascii") if c.isalpha() else None


def _read_bytes(path: str, limit: int = 1 << 20) -> bytes | None:
    """The file up to ``limit`` bytes (procfs files report size 0: read to EOF), or None if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        size = 0
        while size < limit:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
            size += len(b)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


#: the most a procfs file is read up to (as :func:`_read_bytes`)
_READ_LIMIT = 1 << 20


class ProcFile:
    """A procfs file kept open and re-read with ``os.pread`` at offset 0, or None while it cannot be read.

    procfs generates a file's text afresh at every read from offset 0, and one read into a
    large enough buffer returns all of it (a short read is the end), so a read is one system
    call instead of open, read, a read to see the end, and close: about half the time (stat,
    <pid>/stat and meminfo together: ~17 us instead of ~29 on the dev VM, ~57 instead of ~106
    right after the reader slept 10 ms). Reopened once after an error (a process that ended
    gives None). Thread-safe. Where ``os.pread`` does not exist the file is opened at every read.
    """

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._size = 4096
        self._lock = threading.Lock()

    def read(self) -> bytes | None:
        if not hasattr(os, "pread"):  # pragma: no cover - Windows: no procfs either
            return _read_bytes(self.path)
        with self._lock:
            for _ in range(2):
                if self._fd is None:
                    try:
                        self._fd = os.open(self.path, os.O_RDONLY)
                    except OSError:
                        return None
                try:
                    while True:
                        text = os.pread(self._fd, self._size, 0)
                        if len(text) < self._size or self._size >= _READ_LIMIT:
                            return text
                        self._size *= 4  # the buffer was full: there may be more
                except OSError:
                    self._close()
            return None

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass

    def close(self) -> None:
        with self._lock:
            self._close()

    def __del__(self):
        self._close()


class ThreadStates:
    """Counts the threads of one process in state ``R``, as :func:`running_threads`, keeping each thread's stat
    file open between counts (:class:`ProcFile`'s reasoning: one ``pread`` a thread instead of open, read and
    close). The task folder is listed at every count; the files of threads that ended are closed. At most
    :attr:`MAX_OPEN` files are kept open (the threads beyond are opened at every count). Thread-safe."""

    MAX_OPEN = 256

    def __init__(self, pid: int, proc_root: str | os.PathLike = PROC):
        self.task_dir = os.path.join(os.fspath(proc_root), str(pid), "task")
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def _stat(self, tid: str) -> bytes | None:
        fd = self._fds.pop(tid, None)
        for fresh in ((False, True) if fd is not None else (True,)):
            if fresh:
                try:
                    fd = os.open(f"{self.task_dir}/{tid}/stat", os.O_RDONLY)
                except OSError:
                    return None
            try:
                text = os.pread(fd, 4096, 0)  # a task's stat line is well under 1 kB
            except OSError:  # the thread ended (or its number now names another): try the path again
                os.close(fd)
                continue
            if len(self._fds) < self.MAX_OPEN:
                self._fds[tid] = fd
            else:
                os.close(fd)
            return text
        return None

    def running(self) -> int | None:
        """Threads in state ``R``, or None when the task folder cannot be listed."""
        if not hasattr(os, "pread"):  # pragma: no cover - Windows: no procfs either
            return None
        with self._lock:
            try:
                tids = os.listdir(self.task_dir)
            except OSError:
                return None
            n = 0
            for tid in tids:
                text = self._stat(tid)
                if text is not None and task_state(text) == "R":
                    n += 1
            for tid in self._fds.keys() - set(tids):  # threads that ended
                os.close(self._fds.pop(tid))
            return n

    def close(self) -> None:
        with self._lock:
            while self._fds:
                os.close(self._fds.popitem()[1])

    def __del__(self):
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass


def procs_running(proc_root: str | os.PathLike = PROC, stat: bytes | None = None) -> int | None:
    """All runnable threads of the machine (``/proc/stat`` ``procs_running``), or None where unreadable.
    ``stat``: the text of ``/proc/stat`` if the caller has just read it."""
    text = _read_bytes(os.path.join(proc_root, "stat")) if stat is None else stat
    return None if text is None else parse_procs_running(text)


def running_threads(pid: int, proc_root: str | os.PathLike = PROC) -> int | None:
    """Threads of process ``pid`` in state ``R``, or None when its task folder cannot be listed.

    A thread that ends between the listing and the read is skipped, as is an
    unreadable or malformed stat file (not counted as running).
    """
    try:  # stat files are opened relative to the folder: ~15 % faster per thread than full paths
        task = os.open(os.path.join(proc_root, str(pid), "task"), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (OSError, NotImplementedError):
        return None
    try:
        n = 0
        for tid in os.listdir(task):
            try:
                fd = os.open(f"{tid}/stat", os.O_RDONLY, dir_fd=task)
            except (OSError, NotImplementedError):
                continue
            try:
                text = os.read(fd, 4096)  # a task's stat line is well under 1 kB
            except OSError:
                continue
            finally:
                os.close(fd)
            if task_state(text) == "R":
                n += 1
        return n
    except OSError:
        return None
    finally:
        os.close(task)


class RunQueueSampler:
    """Calls ``sample`` ``hz`` times a second in a daemon thread; :meth:`take` gives the mean since the last take.

    ``sample`` returns a number or None (no reading; skipped). :meth:`tick` takes
    one sample in the calling thread (the thread calls it; tests call it
    directly). :meth:`stop` returns once the thread has ended.
    """

    def __init__(self, sample: Callable[[], float | None], hz: float):
        if not (isinstance(hz, (int, float)) and not isinstance(hz, bool) and math.isfinite(hz)
                and 0 < hz <= MAX_RUNNABLE_HZ):
            raise ValueError(f"runnable_hz must be a number in (0, {MAX_RUNNABLE_HZ:g}] samples per second, "
                             f"not {hz!r}")
        self.hz = float(hz)
        self._sample = sample
        self._lock = threading.Lock()
        self._sum = 0.0
        self._n = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> None:
        v = self._sample()
        if v is None:
            return
        with self._lock:
            self._sum += v
            self._n += 1

    def take(self) -> tuple[float | None, int]:
        """(mean of the samples since the previous take or None if there were none, how many), and reset."""
        with self._lock:
            s, n = self._sum, self._n
            self._sum, self._n = 0.0, 0
        return (s / n if n else None), n

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self.take()
        self._thread = threading.Thread(target=self._run, name="adascale-runqueue-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        period = 1.0 / self.hz
        due = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            due += period
            now = time.monotonic()
            if due < now:  # late (a slow read, a suspended process): skip the missed slots, no burst
                due = now + period - (now - due) % period
            if self._stop.wait(due - now):
                return


def _read_khz(path: str) -> float | None:
    try:
        with open(path, encoding="ascii") as fh:
            v = float(fh.read().strip())
    except (OSError, ValueError):
        return None
    return v / 1000.0 if v > 0 and math.isfinite(v) else None


class Monitor:
    """Reads the live context of this machine.

    Parameters
    ----------
    pid:
        The process whose own CPU use is *not* background load (default: this
        process). The runtime selector passes the app's pid.
    sysfs_cpu:
        Where the cpufreq files live (default ``/sys/devices/system/cpu``).
    proc_root:
        Where procfs is mounted (default ``/proc``): ``stat``, ``<pid>/stat`` and ``meminfo`` for
        the CPU shares and the available memory (psutil where one is unreadable), and
        ``<pid>/task`` for ``bg_runnable``.
    clock_reuse_s:
        Where sysfs has no cpufreq (a VM, macOS, Windows) the clock comes from
        ``psutil.cpu_freq()``, which on Linux reads and parses ``/proc/cpuinfo`` (~70 us on the
        dev VM, a large share of a read); a clock read that way is reused for this many seconds
        (default 0: read every time). A sysfs cpufreq clock, where it exists, is read every time.
    runnable_hz:
        If given, :meth:`start` (or ``with monitor:``) runs a daemon thread that
        samples the run queue this many times a second, and each :meth:`read`
        reports the mean since the previous read (:data:`RUNNABLE_HZ` is the
        recorder's rate). Without it, or before :meth:`start`, a read takes one
        instantaneous sample.

    The first :meth:`read` measures CPU use since the monitor was created; each
    later one since the previous read. Call it at a fixed period.
    """

    def __init__(self, pid: int | None = None, *, sysfs_cpu: str | os.PathLike = SYSFS_CPU,
                 proc_root: str | os.PathLike = PROC, runnable_hz: float | None = None, clock_reuse_s: float = 0.0):
        self.process = psutil.Process(pid)
        self.ncpu = psutil.cpu_count() or 1
        self.sysfs_cpu = Path(sysfs_cpu)
        self.proc_root = os.fspath(proc_root)
        self._stat = ProcFile(os.path.join(self.proc_root, "stat"))
        self._pid_stat = ProcFile(os.path.join(self.proc_root, str(self.process.pid), "stat"))
        self._meminfo = ProcFile(os.path.join(self.proc_root, "meminfo"))
        self._threads = ThreadStates(self.process.pid, self.proc_root)
        self.clock_reuse_s = float(clock_reuse_s)
        self._psutil_clock: tuple[float, object] | None = None  # (monotonic time read, psutil.cpu_freq())
        # the thread that reads /proc/stat is runnable and counted there; it is among the
        # monitored process's R threads only when that process is this one
        self._reader_outside = 0 if self.process.pid == os.getpid() else 1
        self._sampler = None if runnable_hz is None else RunQueueSampler(self.bg_runnable_now, runnable_hz)
        self._last = self._cpu_counters()

    # ------------------------------------------------------------------ CPU

    def cpu_times(self, stat: bytes | None = None) -> tuple[float, float]:
        """(all cores' CPU seconds, idle seconds) since boot: ``/proc/stat`` (its text ``stat`` if the caller has
        just read it), else psutil. The same figures either way (see :func:`parse_cpu_times`)."""
        if stat is None:
            stat = self._stat.read()
        parsed = None if stat is None else parse_cpu_times(stat)
        if parsed is not None:
            return parsed
        t = psutil.cpu_times()
        total = sum(t)
        # guest time is already counted in user/nice on Linux (psutil does the same)
        total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
        return total, t.idle + getattr(t, "iowait", 0.0)

    def own_cpu_s(self) -> float:
        """The monitored process's CPU seconds (user + system): ``/proc/<pid>/stat``, else psutil; 0 once it
        has ended or cannot be read."""
        stat = self._pid_stat.read()
        own = None if stat is None else parse_process_cpu_s(stat)
        if own is not None:
            return own
        try:
            p = self.process.cpu_times()
            return p.user + p.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0.0

    def mem_available_bytes(self) -> int:
        """Memory available to a new app without swapping: ``/proc/meminfo`` MemAvailable, else psutil's
        ``virtual_memory().available`` (which also estimates it where the kernel does not tell)."""
        text = self._meminfo.read()
        avail = None if text is None else parse_mem_available(text)
        return avail if avail is not None else psutil.virtual_memory().available

    def _cpu_counters(self, stat: bytes | None = None) -> tuple[float, float, float, float]:
        """(monotonic time, all cores' total CPU seconds, busy CPU seconds, this process's CPU seconds)."""
        total, idle = self.cpu_times(stat)
        own = self.own_cpu_s()
        return time.monotonic(), total, total - idle, own

    def _cpu_shares(self, stat: bytes | None = None) -> tuple[float, float, float, float]:
        now = self._cpu_counters(stat)
        if now[1] - self._last[1] <= 0:
            # no clock tick elapsed since the last read: wait for one rather than report 0
            time.sleep(0.05)
            now = self._cpu_counters()
        d_wall = now[0] - self._last[0]
        d_total = now[1] - self._last[1]
        d_busy = now[2] - self._last[2]
        d_own = now[3] - self._last[3]
        self._last = now
        if d_total <= 0:
            return d_wall, 0.0, 0.0, 0.0
        total = min(max(d_busy / d_total, 0.0), 1.0)
        own = min(max(d_own / d_total, 0.0), 1.0)
        return d_wall, total, own, min(max(total - own, 0.0), 1.0)

    # ------------------------------------------------------------------ run queue

    def bg_runnable_now(self, stat: bytes | None = None) -> float | None:
        """One instantaneous sample of the background run queue, or None where procfs does not tell (``stat``:
        the text of ``/proc/stat`` if the caller has just read it)."""
        text = self._stat.read() if stat is None else stat
        total = None if text is None else parse_procs_running(text)
        if total is None:
            return None
        own = self._threads.running()
        if own is None:
            return None
        return float(max(total - own - self._reader_outside, 0))

    @property
    def runnable_hz(self) -> float | None:
        return None if self._sampler is None else self._sampler.hz

    @property
    def sampling(self) -> bool:
        """Whether the run-queue sampler thread is running."""
        return self._sampler is not None and self._sampler.running

    def start(self) -> "Monitor":
        """Start the run-queue sampler (needs ``runnable_hz``); a no-op where procfs has no run queue."""
        if self._sampler is None:
            raise ValueError("this Monitor has no run-queue sampler to start; create it with "
                             "Monitor(runnable_hz=...)")
        if self.bg_runnable_now() is not None:
            self._sampler.start()
        return self

    def stop(self) -> None:
        """Stop the sampler and wait for its thread to end (safe to call when it is not running)."""
        if self._sampler is not None:
            self._sampler.stop()

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def _bg_runnable(self, stat: bytes | None = None) -> float | None:
        if self.sampling:
            mean, n = self._sampler.take()
            if n:
                return mean
        return self.bg_runnable_now(stat)

    # ------------------------------------------------------------------ clocks

    def _cpufreq_dirs(self) -> list[Path]:
        policies = sorted(self.sysfs_cpu.glob("cpufreq/policy*"))
        if policies:
            return policies
        return sorted(Path(p) for p in glob.glob(str(self.sysfs_cpu / "cpu[0-9]*" / "cpufreq")))

    def _sysfs_max(self, filename: str) -> float | None:
        values = [v for d in self._cpufreq_dirs() if (v := _read_khz(str(d / filename))) is not None]
        return max(values) if values else None

    def _cpu_freq(self):
        """``psutil.cpu_freq()`` (None where it fails), reused for ``clock_reuse_s`` seconds after a read."""
        now = time.monotonic()
        cached = self._psutil_clock
        if cached is not None and now - cached[0] < self.clock_reuse_s:
            return cached[1]
        try:
            f = psutil.cpu_freq()
        except (OSError, NotImplementedError, AttributeError):
            f = None
        self._psutil_clock = (now, f)
        return f

    def freq_cap_mhz(self) -> float | None:
        """The clock cap: highest ``scaling_max_freq``, else psutil's hardware maximum, else None."""
        cap = self._sysfs_max("scaling_max_freq")
        if cap is not None:
            return cap
        f = self._cpu_freq()
        if f is not None and f.max and f.max > 0:
            return float(f.max)
        return None

    def freq_mhz(self) -> float | None:
        """The current clock (highest ``scaling_cur_freq``, read every time; else psutil's, which may be up to
        ``clock_reuse_s`` old), or None."""
        cur = self._sysfs_max("scaling_cur_freq")
        if cur is not None:
            return cur
        f = self._cpu_freq()
        if f is not None and f.current and f.current > 0:
            return float(f.current)
        return None

    # ------------------------------------------------------------------ sensors

    @staticmethod
    def _battery():
        fn = getattr(psutil, "sensors_battery", None)
        if fn is None:
            return None
        try:
            return fn()
        except (OSError, NotImplementedError, RuntimeError):
            return None

    def battery(self) -> tuple[float | None, float | None]:
        """(percent, plugged flag) or None for what the platform does not report."""
        b = self._battery()
        if b is None:
            return None, None
        pct = float(b.percent) if b.percent is not None and math.isfinite(b.percent) else None
        if pct is not None:
            pct = min(max(pct, 0.0), 100.0)
        plugged = None if b.power_plugged is None else (1.0 if b.power_plugged else 0.0)
        return pct, plugged

    @staticmethod
    def soc_temp_c() -> float | None:
        """The CPU/SoC die temperature, or None when no sensor is exposed."""
        fn = getattr(psutil, "sensors_temperatures", None)
        if fn is None:
            return None
        try:
            temps = fn()
        except (OSError, NotImplementedError, RuntimeError):
            return None
        if not temps:
            return None
        for chip in _SOC_SENSORS:
            vals = [e.current for e in temps.get(chip, ()) if e.current is not None and math.isfinite(e.current)]
            if vals:
                return float(max(vals))
        vals = [e.current for es in temps.values() for e in es if e.current is not None and math.isfinite(e.current)]
        return float(max(vals)) if vals else None

    # ------------------------------------------------------------------ public

    def read(self) -> Reading:
        """A full reading; CPU figures cover the time since the previous read."""
        stat = self._stat.read()  # one read for the CPU times and a run-queue sample
        d_wall, total, own, bg = self._cpu_shares(stat)
        pct, plugged = self.battery()
        return Reading(
            time_s=time.monotonic(), interval_s=d_wall, bg_cpu_util=bg, cpu_util=total, self_cpu_util=own,
            bg_runnable=self._bg_runnable(stat),
            mem_avail_mb=self.mem_available_bytes() / 2**20,
            freq_cap_mhz=self.freq_cap_mhz(), freq_mhz=self.freq_mhz(),
            battery_pct=pct, plugged=plugged, soc_temp_c=self.soc_temp_c(),
        )

    def sample(self) -> dict[str, float | None]:
        """The context fields (schema names, no ``t_s``), ``None`` where the platform has nothing."""
        return self.read().context()

    def sensors(self) -> dict[str, str | None]:
        """Where each reading comes from on this machine; ``None`` for what is missing."""
        caps = self._sysfs_max("scaling_max_freq") is not None
        f = self._cpu_freq()
        pct, plugged = self.battery()
        temp = self.soc_temp_c()
        cur_sysfs = self._sysfs_max("scaling_cur_freq") is not None
        runnable = None
        if self.bg_runnable_now() is not None:
            runnable = ("/proc/stat procs_running minus the monitored process's R threads "
                        "(/proc/<pid>/task/*/stat), " + ("one sample per read" if self._sampler is None else
                                                         f"mean of {self._sampler.hz:g} Hz samples once started"))
        stat = self._stat.read()
        total_src = ("/proc/stat cpu line" if stat is not None and parse_cpu_times(stat) is not None else
                     "psutil.cpu_times()")
        pid_stat = self._pid_stat.read()
        own_src = ("/proc/<pid>/stat utime + stime" if pid_stat is not None and parse_process_cpu_s(pid_stat)
                   is not None else "psutil.Process.cpu_times()")
        meminfo = self._meminfo.read()
        mem_src = ("/proc/meminfo MemAvailable" if meminfo is not None and parse_mem_available(meminfo) is not None
                   else "psutil.virtual_memory().available")
        return {
            "bg_cpu_util": f"{total_src} minus {own_src} of the monitored process",
            "bg_runnable": runnable,
            "mem_avail_mb": mem_src,
            "freq_cap_mhz": ("cpufreq scaling_max_freq" if caps else
                             "psutil.cpu_freq().max" if f is not None and f.max and f.max > 0 else None),
            "freq_mhz": ("cpufreq scaling_cur_freq" if cur_sysfs else
                         "psutil.cpu_freq().current" if f is not None and f.current and f.current > 0 else None),
            "battery_pct": "psutil.sensors_battery().percent" if pct is not None else None,
            "plugged": "psutil.sensors_battery().power_plugged" if plugged is not None else None,
            "soc_temp_c": "psutil.sensors_temperatures()" if temp is not None else None,
            "ambient_temp_c": None,
            "request_rate_hz": None,
            "deadline_ms": None,
        }

    def available(self) -> list[str]:
        """The schema fields this machine can provide, in schema order (``t_s`` excluded)."""
        have = self.sensors()
        return [n for n in schema.NAMES if n != "t_s" and have.get(n) is not None]


def summary(monitor: Monitor | None = None) -> str:
    """A few lines saying which sensors this machine has (for the CLI and docs)."""
    m = monitor or Monitor()
    lines = []
    for name, src in m.sensors().items():
        lines.append(f"{name:<16} {'missing' if src is None else src}")
    return "\n".join(lines)
