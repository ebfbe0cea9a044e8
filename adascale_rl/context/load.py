"""Real load on this machine: busy processes that take CPU, a process that holds memory.

Used by ``adascale-rl profile`` (latency under 0, 1, 2 and 2 x cores busy processes),
``benchmarks/contention.py`` and the live loop's load schedules. Every child is started by
a context manager that stops it on exit, on an error and on Ctrl-C; and every child watches
its parent and ends by itself if the parent dies without stopping it (SIGKILL), so no load
outlives the program that started it.

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
