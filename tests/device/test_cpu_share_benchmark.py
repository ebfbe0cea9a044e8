"""benchmarks/cpu_share.py runs end to end on a tiny budget and refuses bad arguments (its busy processes are
:class:`adascale_rl.context.load.BusyProcesses`, stopped on exit whatever happens; tests/evaluation/test_live.py
checks that a run's load children are stopped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "cpu_share.py"


def test_a_tiny_run_prints_every_cell():
    res = subprocess.run([sys.executable, str(SCRIPT), "--busy", "0", "1", "--periods", "5", "--seconds", "0.2",
                          "--rounds", "1", "--work-ms", "0.5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line.split() for line in res.stdout.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert [(r[0], r[1]) for r in rows] == [("0", "b2b"), ("0", "5ms"), ("1", "b2b"), ("1", "5ms")]
    for r in rows:
        assert 0.0 <= float(r[4]) <= 1.5  # the app's CPU share (a share of one core, with accounting jitter)


def test_bad_arguments_are_refused_with_a_message():
    res = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--seconds" in res.stderr


def test_cpus_pins_the_app_and_its_busy_processes():
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning to one CPU of several needs os.sched_setaffinity (Linux) and two CPUs")
    first = min(os.sched_getaffinity(0))
    res = subprocess.run([sys.executable, str(SCRIPT), "--cpus", str(first), "--busy", "1", "--periods", "5",
                          "--seconds", "0.2", "--rounds", "1", "--work-ms", "0.5"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"1 core; pinned to CPU(s) {first}" in res.stdout
    rows = [line.split() for line in res.stdout.splitlines() if line.split()[:1] == ["1"]]
    assert rows and all(r[3] == "0.500" for r in rows)  # the fair share of one core beside one busy process
    # the app and its busy process share one CPU: their CPU shares cannot add up to much more than one core
    assert all(float(r[4]) + float(r[5]) <= 1.2 for r in rows), rows


def test_a_cpu_this_process_may_not_use_is_refused():
    res = subprocess.run([sys.executable, str(SCRIPT), "--cpus", str(10**6)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "--cpus" in res.stderr
