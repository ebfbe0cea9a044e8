"""The CPUs a process may run on (its affinity mask, not the machine's count), and pinning to some of them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adascale_rl._cpus import pin, usable_cpus

LINUX = hasattr(os, "sched_setaffinity")


def test_usable_cpus_is_the_affinity_mask_where_there_is_one():
    n = usable_cpus()
    assert n >= 1
    if LINUX:
        assert n == len(os.sched_getaffinity(0))
    else:
        assert n == (os.cpu_count() or 1)


@pytest.mark.skipif(not LINUX, reason="pinning needs os.sched_setaffinity (Linux)")
def test_pinning_narrows_this_process_and_the_children_it_starts():
    first = min(os.sched_getaffinity(0))
    code = ("import os, subprocess, sys\n"
            "from adascale_rl._cpus import pin, usable_cpus\n"
            f"print(pin([{first}]), usable_cpus())\n"
            "child = subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'],"
            " capture_output=True, text=True)\n"
            "print(child.stdout.strip())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == [f"[{first}] 1", f"[{first}]"]


@pytest.mark.skipif(not LINUX, reason="pinning needs os.sched_setaffinity (Linux)")
@pytest.mark.parametrize("cpus, says", [([], "at least one"), ([0, 0], "repeat"), ([10**6], "not among")])
def test_a_bad_cpu_list_is_refused_and_changes_nothing(cpus, says):
    before = os.sched_getaffinity(0)
    with pytest.raises(ValueError, match=says):
        pin(cpus)
    assert os.sched_getaffinity(0) == before
