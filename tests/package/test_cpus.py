"""The CPUs a process may run on (its affinity mask, not the machine's count), and pinning to some of them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adascale_rl import _cpus
from adascale_rl._cpus import pin, usable_cpus

LINUX = hasattr(os, "sched_setaffinity")
SEVERAL = LINUX and len(os.sched_getaffinity(0)) >= 2


def test_usable_cpus_is_the_affinity_mask_where_there_is_one(monkeypatch):
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert usable_cpus() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 16)

    def refuses(pid):
        raise OSError("no mask here")

    monkeypatch.setattr(os, "sched_getaffinity", refuses)
    assert usable_cpus() == 16  # no mask to read: the machine's count
    monkeypatch.delattr(os, "sched_getaffinity")
    assert usable_cpus() == 16
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpus() == 1


@pytest.mark.skipif(not SEVERAL, reason="pinning to one CPU of several needs Linux and two CPUs")
def test_pinning_narrows_every_thread_and_the_children_started_after():
    first = min(os.sched_getaffinity(0))
    code = ("import os, subprocess, sys, threading\n"
            "from adascale_rl._cpus import pin, usable_cpus\n"
            "seen, go = [], threading.Event()\n"
            "def worker():\n"
            "    go.wait()\n"
            "    seen.append(sorted(os.sched_getaffinity(0)))\n"
            "t = threading.Thread(target=worker)\n"
            "t.start()  # started before pin: Linux keeps a mask per thread\n"
            f"print(pin([{first}, {first}]), usable_cpus())\n"
            "go.set(); t.join()\n"
            "print(seen[0])\n"
            "child = subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.sched_getaffinity(0)))'],"
            " capture_output=True, text=True)\n"
            "print(child.stdout.strip())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == [f"[{first}] 1", f"[{first}]", f"[{first}]"]


@pytest.mark.skipif(not LINUX, reason="pinning needs os.sched_setaffinity (Linux)")
@pytest.mark.parametrize("cpus, says", [([], "at least one"), ([10**6], "not among")])
def test_a_bad_cpu_list_is_refused_and_changes_nothing(cpus, says):
    before = os.sched_getaffinity(0)
    with pytest.raises(ValueError, match=says):
        pin(cpus)
    assert os.sched_getaffinity(0) == before


@pytest.mark.skipif(not LINUX, reason="pinning needs os.sched_setaffinity (Linux)")
def test_an_os_refusal_is_a_value_error_naming_the_cpus(monkeypatch):
    def refuses(pid, mask):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuses)
    first = min(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match=rf"refused to pin to CPU\(s\) \[{first}\]"):
        pin([first])


def test_without_sched_setaffinity_pinning_says_what_it_needs(monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    with pytest.raises(ValueError, match="Linux"):
        _cpus.pin([0])


@pytest.mark.skipif(not SEVERAL, reason="pinning to one CPU of several needs Linux and two CPUs")
def test_a_pinned_profile_writes_a_preset_of_that_many_cores_and_the_kernels_slice():
    """profile's device preset counts the CPUs the app may run on; the kernel's slice stays the one it set at boot
    (scaled by the CPUs online, not by a mask)."""
    first = min(os.sched_getaffinity(0))
    code = ("import os, sys, tempfile\n"
            "from pathlib import Path\n"
            "from adascale_rl.elastic import profile\n"
            "from adascale_rl.device.presets import load_preset_file\n"
            "before = load_preset_file(profile.write_device_preset(Path(tempfile.mkdtemp()) / 'h.yaml', 'h', 1,"
            " {'v': {'load_and_first_ms': 50.0, 'peak_rss_mb': 10.0}}))\n"
            f"from adascale_rl._cpus import pin; pin([{first}])\n"
            "after = load_preset_file(profile.write_device_preset(Path(tempfile.mkdtemp()) / 'h.yaml', 'h', 1,"
            " {'v': {'load_and_first_ms': 50.0, 'peak_rss_mb': 10.0}}))\n"
            "print(before.cores, after.cores, before.wake_slice_ms == after.wake_slice_ms)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == [str(len(os.sched_getaffinity(0))), "1", "True"]
