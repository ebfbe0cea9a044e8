"""The CPUs this process may run on, and pinning it (and the children it starts after) to some of them.

A bottom-layer helper (no package imports). The host's core count that the contention model, ``profile`` and
``calibrate`` need is the number of CPUs the app's threads and the busy processes it starts can be scheduled
on: in a container limited by a cpuset, under ``taskset`` or after :func:`pin`, that is the affinity mask,
not the machine's count (``os.cpu_count()`` and ``psutil.cpu_count()`` report the machine's). A CPU quota
(cgroup ``cpu.max``, ``docker --cpus``) limits time, not CPUs; it is not seen here.
"""

from __future__ import annotations

import os
from typing import Sequence


def usable_cpus() -> int:
    """How many CPUs this process may run on: its affinity mask where the OS has one (Linux), else the machine's
    count (at least 1)."""
    counted = getattr(os, "process_cpu_count", None)  # Python 3.13: the same thing
    if counted is not None:
        return counted() or 1
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return max(1, len(getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def pin(cpus: Sequence[int]) -> list[int]:
    """Restrict this process to ``cpus``: every thread it has (Linux keeps a mask per thread; numpy's or torch's
    pools may have started already) and the threads and child processes it starts afterwards, which inherit
    it. Returns the CPUs, sorted, each once.

    ``ValueError`` naming the problem if the list is empty, names a CPU this process may not use, or the OS
    cannot pin (only Linux has ``sched_setaffinity``; it may also refuse, e.g. when a cpuset changes)."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None:
        raise ValueError("pinning to CPUs needs os.sched_setaffinity (Linux)")
    wanted = sorted(set(cpus))
    if not wanted:
        raise ValueError("name at least one CPU to pin to")
    allowed = sorted(os.sched_getaffinity(0))
    outside = [c for c in wanted if c not in allowed]
    if outside:
        raise ValueError(f"CPU(s) {outside} are not among the CPUs this process may use ({allowed})")
    try:
        setaffinity(0, wanted)  # this thread first: the others follow, or the error says why none did
        for tid in _threads():
            try:
                setaffinity(tid, wanted)
            except ProcessLookupError:  # the thread ended meanwhile
                pass
    except OSError as exc:
        raise ValueError(f"the OS refused to pin to CPU(s) {wanted}: {exc}") from exc
    return wanted


def _threads() -> list[int]:
    """This process's thread ids (Linux's /proc/self/task), [] where the OS does not list them."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []
