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
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return max(1, len(getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def pin(cpus: Sequence[int]) -> list[int]:
    """Restrict this process to ``cpus`` (children started afterwards inherit it); the sorted CPUs.

    ``ValueError`` naming the problem if the list is empty, repeats a CPU, names one this process may not use,
    or the OS cannot pin (only Linux has ``sched_setaffinity``)."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None:
        raise ValueError("pinning to CPUs needs os.sched_setaffinity (Linux)")
    wanted = list(cpus)
    if not wanted:
        raise ValueError("name at least one CPU to pin to")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"CPUs {wanted} repeat one")
    allowed = sorted(os.sched_getaffinity(0))
    outside = [c for c in wanted if c not in allowed]
    if outside:
        raise ValueError(f"CPU(s) {outside} are not among the CPUs this process may use ({allowed})")
    setaffinity(0, set(wanted))
    return sorted(wanted)
