"""The live monitor on this machine: present sensors in range, missing ones None, never invented.

The run queue (bg_runnable) is tested on fake /proc trees: parsing, own-thread subtraction,
missing files, the sampler's averaging and its thread's life; and once live where /proc exists.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adascale_rl.context import schema
from adascale_rl.context.monitor import (
    CLOCK_TICKS, Monitor, ProcFile, Reading, RunQueueSampler, ThreadStates, parse_cpu_times, parse_mem_available,
    parse_procs_running, parse_process_cpu_s, procs_running, running_threads, summary, task_state,
)

CONTEXT_KEYS = [n for n in schema.NAMES if n != "t_s"]


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(i * i for i in range(2000))


def test_sample_has_every_context_field_and_valid_values():
    m = Monitor()
    time.sleep(0.3)
    s = m.sample()
    assert list(s) == CONTEXT_KEYS
    for name, value in s.items():
        if value is not None:
            assert schema.field(name).check(value) is None, (name, value)
    assert 0.0 <= s["bg_cpu_util"] <= 1.0
    assert 0.0 < s["mem_avail_mb"] <= psutil.virtual_memory().total / 2**20


def test_app_fields_and_ambient_are_never_invented():
    s = Monitor().sample()
    assert s["ambient_temp_c"] is None and s["request_rate_hz"] is None and s["deadline_ms"] is None


def test_missing_sensors_are_reported_missing():
    """Whatever this machine lacks must come back as None (a VM: no battery, temperature, cpufreq)."""
    m = Monitor()
    r = m.read()
    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    if battery is None:
        assert r.battery_pct is None and r.plugged is None
        assert m.sensors()["battery_pct"] is None and "battery_pct" not in m.available()
    else:
        assert 0 <= r.battery_pct <= 100 and r.plugged in (0.0, 1.0, None)
    temps = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
    if not temps:
        assert r.soc_temp_c is None and m.sensors()["soc_temp_c"] is None
    else:
        assert -40 < r.soc_temp_c < 150
    freq = psutil.cpu_freq()
    has_sysfs = bool(list(m._cpufreq_dirs())) and m._sysfs_max("scaling_max_freq") is not None
    if not has_sysfs and not (freq and freq.max and freq.max > 0):
        assert r.freq_cap_mhz is None and "freq_cap_mhz" not in m.available()
    else:
        assert 1 <= r.freq_cap_mhz <= 1e5 and "freq_cap_mhz" in m.available()
    if r.freq_mhz is not None:
        assert 1 <= r.freq_mhz <= 1e5
    assert {"bg_cpu_util", "mem_avail_mb"} <= set(m.available())
    assert set(m.available()) <= set(CONTEXT_KEYS)


def test_own_cpu_use_is_not_background():
    m = Monitor()
    _busy(0.6)
    r = m.read()
    assert isinstance(r, Reading)
    assert r.self_cpu_util >= 0.1, r  # busy on one core: about 1/ncpu unless starved
    # the machine's CPU time and the process's are counted in clock ticks: over the interval each counter's
    # difference is off by less than one tick, so the process's two (user, system) and the machine's per-CPU busy
    # counters may differ by up to 2 + ncpu ticks of the interval's CPU capacity (2 alone failed once in CI on 2
    # CPUs: 0.4958 + 0.0167 against 0.5126)
    ncpu = psutil.cpu_count() or 1
    tick = (2.0 + ncpu) / (os.sysconf("SC_CLK_TCK") * r.interval_s * ncpu)
    assert r.cpu_util + tick >= r.self_cpu_util, r
    assert r.bg_cpu_util == pytest.approx(min(max(r.cpu_util - r.self_cpu_util, 0.0), 1.0))
    assert 0.5 <= r.interval_s < 5


def test_another_process_is_background():
    m = Monitor()
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend=time.monotonic()+1.0\nwhile time.monotonic()<end: pass"])
    child.wait(timeout=30)
    r = m.read()
    # one busy process is at least a share of one core (more if other jobs run too)
    assert r.bg_cpu_util >= 0.25 / psutil.cpu_count(), r
    assert r.self_cpu_util < 0.2, r


def test_monitoring_another_pid_excludes_that_process():
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend=time.monotonic()+1.0\nwhile time.monotonic()<end: pass"])
    try:
        m = Monitor(child.pid)
        time.sleep(0.7)
        r = m.read()
    finally:
        child.wait(timeout=30)
    assert r.self_cpu_util >= 0.2 / psutil.cpu_count(), r


def test_cpufreq_files_are_read_when_present(tmp_path):
    for policy, max_khz, cur_khz in (("policy0", 1785600, 300000), ("policy4", 2419200, 1804800)):
        d = tmp_path / "cpufreq" / policy
        d.mkdir(parents=True)
        (d / "scaling_max_freq").write_text(f"{max_khz}\n")
        (d / "scaling_cur_freq").write_text(f"{cur_khz}\n")
    m = Monitor(sysfs_cpu=tmp_path)
    assert m.freq_cap_mhz() == pytest.approx(2419.2)
    assert m.freq_mhz() == pytest.approx(1804.8)
    assert m.sensors()["freq_cap_mhz"] == "cpufreq scaling_max_freq"
    assert "freq_cap_mhz" in m.available()
    assert m.sample()["freq_cap_mhz"] == pytest.approx(2419.2)


def test_per_cpu_cpufreq_layout_and_unreadable_files(tmp_path):
    for cpu, khz in (("cpu0", "1500000"), ("cpu1", "garbage"), ("cpu2", "0")):
        d = tmp_path / cpu / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_max_freq").write_text(khz)
    assert Monitor(sysfs_cpu=tmp_path).freq_cap_mhz() == pytest.approx(1500.0)


def test_summary_names_every_reading():
    text = summary()
    for key in ("bg_cpu_util", "mem_avail_mb", "freq_cap_mhz", "battery_pct", "soc_temp_c", "ambient_temp_c"):
        assert key in text
    assert "ambient_temp_c   missing" in text


# --------------------------------------------------------------------------- bg_runnable: the run queue

SAMPLER_THREAD = "adascale-runqueue-sampler"
STAT = ("cpu  106775 8531 5608 904707 247 0 69 32 0 0\ncpu0 35971 1041 1079 474764 25 0 40 14 0 0\n"
        "intr 717664 0 0 13 0 1027 123\nctxt 673203\nbtime 1796107299\nprocesses 5087\n"
        "procs_running {n}\nprocs_blocked 0\nsoftirq 286729 0 76124 3 5506\n")


def fake_proc(root: Path, running: int | None, tasks: dict[int, list[str]]) -> Path:
    """A /proc tree: stat with ``procs_running`` (None: no such line), and <pid>/task/<tid>/stat per thread state."""
    root.mkdir(parents=True, exist_ok=True)
    text = STAT.format(n=running) if running is not None else STAT.replace("procs_running {n}\n", "")
    (root / "stat").write_text(text)
    for pid, states in tasks.items():
        for i, state in enumerate(states):
            d = root / str(pid) / "task" / str(pid + i)
            d.mkdir(parents=True, exist_ok=True)
            (d / "stat").write_text(f"{pid + i} (python3 (w) x) {state} 1 {pid} {pid} 0 -1 4194304 101 0 0 0\n")
    return root


def _no_sampler_thread() -> bool:
    return not any(t.name == SAMPLER_THREAD for t in threading.enumerate())


def test_procs_running_is_parsed_from_proc_stat():
    assert parse_procs_running(STAT.format(n=7).encode()) == 7
    assert parse_procs_running(b"procs_running 12") == 12  # first line, no newline at the end
    for bad in (b"", b"procs_blocked 3\n", b"procs_running x\n", b"procs_running -1\n", b"procs_running 1_0\n",
                b"procs_running\n", b"xprocs_running 4\n", b"procs_running_now 4\n", b"procs_running 4 5\n"):
        assert parse_procs_running(bad) is None, bad


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_property_any_proc_stat_text_gives_a_count_or_none(text):
    n = parse_procs_running(text)
    assert n is None or (isinstance(n, int) and n >= 0)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.from_regex(r"[a-z_]{1,12}( [0-9]{1,6}){0,5}", fullmatch=True), max_size=6),
       st.integers(0, 10**6))
def test_property_procs_running_is_found_among_other_lines(lines, n):
    lines = [ln for ln in lines if not ln.startswith("procs_running")]
    text = "\n".join(lines[:3] + [f"procs_running {n}"] + lines[3:]) + "\n"
    assert parse_procs_running(text.encode()) == n


def test_task_state_reads_past_parentheses_in_the_command_name():
    assert task_state(b"4242 (python3) R 1 4242 4242 0 -1\n") == "R"
    assert task_state(b"7 (a) R (b) S 1 2 3\n") == "S", "the state follows the last ')'"
    assert task_state(b"7 (tmux: server) D 1\n") == "D"
    for bad in (b"", b"7 python3 R 1", b"7 (python3)R 1", b"7 (python3) ", b"7 (python3) 1 2"):
        assert task_state(bad) is None, bad


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=40).filter(lambda b: b"\n" not in b), st.sampled_from("RSDZTtXIPW"),
       st.lists(st.integers(-10**9, 10**12), max_size=8))
def test_property_task_state_for_any_command_name(comm, state, numbers):
    text = b"123 (" + comm + b") " + state.encode() + b"".join(b" %d" % x for x in numbers) + b"\n"
    assert task_state(text) == state


def test_background_run_queue_subtracts_the_monitored_process_s_running_threads(tmp_path):
    me = os.getpid()
    root = fake_proc(tmp_path / "proc", 5, {me: ["R", "R", "S", "D"], me + 1000: ["R", "R"]})
    assert procs_running(root) == 5 and running_threads(me, root) == 2
    m = Monitor(proc_root=root)
    assert m.bg_runnable_now() == 3.0, "5 runnable, 2 of them ours (the reading thread is one of ours)"
    r = m.read()
    assert r.bg_runnable == 3.0 and r.context()["bg_runnable"] == 3.0 and m.sample()["bg_runnable"] == 3.0
    assert "procs_running" in m.sensors()["bg_runnable"] and "bg_runnable" in m.available()
    (root / "stat").write_text(STAT.format(n=1))
    assert m.bg_runnable_now() == 0.0, "clipped at 0 when the counts were read at different instants"


def test_monitoring_another_pid_also_subtracts_the_reading_thread(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        root = fake_proc(tmp_path / "proc", 6, {child.pid: ["R", "S", "R"]})
        # 6 runnable: the app's 2, the monitor's reading thread (not in the app), 3 background
        assert Monitor(child.pid, proc_root=root).bg_runnable_now() == 3.0
    finally:
        child.kill()
        child.wait(timeout=30)


def test_a_thread_that_vanished_or_is_unreadable_is_not_counted(tmp_path):
    me = os.getpid()
    root = fake_proc(tmp_path / "proc", 4, {me: ["R"]})
    (root / str(me) / "task" / "99999999").mkdir()  # ended between listing and reading: no stat file
    (root / str(me) / "task" / "99999998").mkdir()
    (root / str(me) / "task" / "99999998" / "stat").write_text("garbage without a state")
    assert running_threads(me, root) == 1
    assert Monitor(proc_root=root).bg_runnable_now() == 3.0


@pytest.mark.parametrize("broken", ["no_proc", "no_stat", "no_line", "no_task"])
def test_missing_run_queue_is_none_never_invented(tmp_path, broken):
    me = os.getpid()
    root = tmp_path / "proc"
    if broken != "no_proc":
        fake_proc(root, None if broken == "no_line" else 3, {} if broken == "no_task" else {me: ["R"]})
        if broken == "no_stat":
            (root / "stat").unlink()
    m = Monitor(proc_root=root, runnable_hz=50)
    assert m.bg_runnable_now() is None
    r = m.read()
    assert r.bg_runnable is None and m.sample()["bg_runnable"] is None
    assert m.sensors()["bg_runnable"] is None and "bg_runnable" not in m.available()
    assert "bg_runnable      missing" in summary(m)
    with m:  # nothing to sample here: no thread is started
        assert not m.sampling and _no_sampler_thread()
    assert m.read().bg_runnable is None


def test_sampler_averages_the_samples_since_the_previous_take():
    script = iter([1.0, 2.0, None, 3.0, 10.0])
    s = RunQueueSampler(lambda: next(script), 20)
    assert s.take() == (None, 0)
    for _ in range(4):
        s.tick()
    assert s.take() == (2.0, 3), "None (no reading) is skipped, not averaged as 0"
    assert s.take() == (None, 0)
    s.tick()
    assert s.take() == (10.0, 1)


@pytest.mark.parametrize("hz", [0, -5, math.nan, math.inf, 1001, "20", None])
def test_sampler_rate_must_be_a_sensible_number(hz):
    with pytest.raises(ValueError, match=r"runnable_hz must be a number in \(0, 1000\] samples per second, not "):
        RunQueueSampler(lambda: 0.0, hz)


def test_sampler_thread_runs_at_its_rate_and_is_gone_after_stop():
    calls = []
    s = RunQueueSampler(lambda: calls.append(time.monotonic()) or 1.0, 100)
    s.start()
    s.start()  # a second start does not start a second thread
    assert sum(t.name == SAMPLER_THREAD for t in threading.enumerate()) == 1
    assert [t for t in threading.enumerate() if t.name == SAMPLER_THREAD][0].daemon
    time.sleep(0.5)
    s.stop()
    assert not s.running and _no_sampler_thread()
    n = len(calls)
    assert 10 <= n <= 60, f"{n} samples in 0.5 s at 100 Hz"  # loose: the test machine may be busy
    time.sleep(0.1)
    assert len(calls) == n, "no sample after stop()"
    mean, count = s.take()
    assert (mean, count) == (1.0, n)
    s.stop()  # stopping twice is fine


def test_monitor_read_reports_the_mean_while_sampling_else_one_sample(tmp_path):
    me = os.getpid()
    root = fake_proc(tmp_path / "proc", 4, {me: ["R"]})
    m = Monitor(proc_root=root, runnable_hz=0.001)  # the thread samples once at start, then waits 1000 s
    assert m.runnable_hz == 0.001 and not m.sampling
    with m:
        assert m.sampling
        end = time.monotonic() + 10
        while m._sampler._n < 1:  # the thread's first sample (3 = 4 - ours)
            assert time.monotonic() < end
            time.sleep(0.005)
        for running in (8, 10):  # two more samples, 7 and 9
            (root / "stat").write_text(STAT.format(n=running))
            m._sampler.tick()
        assert m.read().bg_runnable == pytest.approx((3 + 7 + 9) / 3)
        # no sample since that read: one instantaneous sample instead of a stale mean
        assert m.read().bg_runnable == 9.0
    assert not m.sampling and _no_sampler_thread()
    (root / "stat").write_text(STAT.format(n=2))
    assert m.read().bg_runnable == 1.0


def test_start_needs_a_rate():
    with pytest.raises(ValueError, match=r"no run-queue sampler to start; create it with Monitor\(runnable_hz=...\)"):
        Monitor().start()


@pytest.mark.skipif(procs_running() is None, reason="no /proc/stat run queue on this platform")
def test_live_run_queue_counts_busy_processes_past_the_core_count():
    """Busy processes are runnable all the time: they count in bg_runnable even beyond the cores, and
    monitoring one of them removes its thread (the difference of two monitors read at the same instants)."""
    ncpu = psutil.cpu_count() or 1
    busy = "import time\nend=time.monotonic()+3\nwhile time.monotonic()<end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(ncpu + 1)]
    try:
        time.sleep(0.2)
        me, other = Monitor(), Monitor(procs[0].pid)
        diffs, mine = [], []
        for _ in range(40):
            a, b = me.bg_runnable_now(), other.bg_runnable_now()
            mine.append(a)
            diffs.append(a - b)
            time.sleep(0.01)
        with Monitor(runnable_hz=50) as sampled:
            sampled.read()
            time.sleep(0.5)
            r = sampled.read()
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
    assert np.mean(mine) >= ncpu + 0.5, mine  # ncpu+1 busy children, so more than the cores
    assert r.bg_runnable >= ncpu + 0.5 and r.bg_cpu_util <= 1.0, r
    assert 0.6 <= np.mean(diffs) <= 1.4, diffs  # the monitored child's one running thread


# --------------------------------------------------------------------------- CPU times and memory from procfs

MEMINFO = ("MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    {avail} kB\n"
           "Buffers:          100000 kB\nCached:          2000000 kB\n")


def _pid_stat(pid: int, utime: int, stime: int) -> str:
    # proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
    return f"{pid} (py (x) y) S 1 {pid} {pid} 0 -1 4194304 101 0 0 0 {utime} {stime} 3 4 20 0 1 0 2411315 3133440\n"


def fake_cpu_proc(root: Path, pid: int, cpu: str, utime: int, stime: int, avail_kb: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  {cpu}\ncpu0 1 2 3 4 5 6 7 8 0 0\nprocs_running 3\n")
    (root / str(pid)).mkdir(exist_ok=True)
    (root / str(pid) / "stat").write_text(_pid_stat(pid, utime, stime))
    (root / "meminfo").write_text(MEMINFO.format(avail=avail_kb))
    return root


def test_cpu_times_are_parsed_as_psutil_adds_them_up():
    t = CLOCK_TICKS
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user and nice
    assert parse_cpu_times(b"cpu  100 20 30 400 5 6 7 8 9 10\ncpu0 1 2 3 4\n") == (
        pytest.approx(576 / t), pytest.approx(405 / t))
    assert parse_cpu_times(STAT.format(n=3).encode()) == (
        pytest.approx((106775 + 8531 + 5608 + 904707 + 247 + 69 + 32) / t), pytest.approx((904707 + 247) / t))
    assert parse_cpu_times(b"cpu  1 2 3 4") == (pytest.approx(10 / t), pytest.approx(4 / t)), "an old kernel's four"
    assert parse_cpu_times(b"cpu  1 2 3 4 0 0 0 0 0 0 99\n") == (pytest.approx(10 / t), pytest.approx(4 / t)), \
        "fields past guest_nice are ignored, as psutil does"
    for bad in (b"", b"cpu0 1 2 3 4\n", b"cpu  1 2 x 4\n", b"cpu  1 2 3\n", b"intr 1\ncpu  1 2 3 4\n",
                b"cpu  1 2 -3 4\n", b"cpux 1 2 3 4\n"):
        assert parse_cpu_times(bad) is None, bad


def test_process_cpu_time_is_utime_plus_stime_after_the_last_parenthesis():
    assert parse_process_cpu_s(_pid_stat(42, 250, 50).encode()) == pytest.approx(300 / CLOCK_TICKS)
    for bad in (b"", b"42 (py) S 1 2 3", b"42 py S 1 2 3 4 5 6 7 8 9 10 11 12 13",
                _pid_stat(42, 250, 50).replace("250", "2x0").encode()):
        assert parse_process_cpu_s(bad) is None, bad


def test_mem_available_is_meminfo_kib_in_bytes():
    assert parse_mem_available(MEMINFO.format(avail=5000000).encode()) == 5000000 * 1024
    # missing, 0 (a kernel bug psutil works around) or above the total: psutil's estimate is asked for instead
    for bad in (MEMINFO.format(avail=0), MEMINFO.format(avail=9000000), MEMINFO.replace("MemAvailable", "MemX"),
                MEMINFO.replace("MemTotal", "MemY"), MEMINFO.format(avail="12 MB")):
        assert parse_mem_available(bad.encode()) is None, bad


def test_read_from_procfs_files_gives_the_shares_between_two_reads(tmp_path):
    me = os.getpid()
    root = fake_cpu_proc(tmp_path / "proc", me, "1000 0 500 8000 500 0 0 0 0 0", 100, 50, 4000000)
    m = Monitor(proc_root=root)
    assert m.cpu_times() == (pytest.approx(10000 / CLOCK_TICKS), pytest.approx(8500 / CLOCK_TICKS))
    assert m.own_cpu_s() == pytest.approx(150 / CLOCK_TICKS)
    assert m.mem_available_bytes() == 4000000 * 1024
    # 200 ticks later: 120 busy (60 %), 40 of them the monitored process's (20 %)
    fake_cpu_proc(root, me, "1100 0 520 8080 500 0 0 0 0 0", 130, 60, 3000000)
    r = m.read()
    assert (r.cpu_util, r.self_cpu_util, r.bg_cpu_util) == (pytest.approx(0.6), pytest.approx(0.2),
                                                            pytest.approx(0.4))
    assert r.mem_avail_mb == pytest.approx(3000000 / 1024)
    s = m.sensors()
    assert s["bg_cpu_util"] == "/proc/stat cpu line minus /proc/<pid>/stat utime + stime of the monitored process"
    assert s["mem_avail_mb"] == "/proc/meminfo MemAvailable"


def test_psutil_is_read_when_a_procfs_file_is_missing_or_malformed(tmp_path, monkeypatch):
    me = os.getpid()
    calls = []
    cpu = psutil.cpu_times().__class__
    fake_cpu = cpu(*([1.0] * len(cpu._fields)))
    monkeypatch.setattr(psutil, "cpu_times", lambda: calls.append("cpu_times") or fake_cpu)
    monkeypatch.setattr(psutil.Process, "cpu_times",
                        lambda self: calls.append("process") or SimpleNamespace(user=2.0, system=3.0))
    vm = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: calls.append("memory") or vm._replace(available=2**30))
    guests = sum(getattr(fake_cpu, f, 0.0) for f in ("guest", "guest_nice"))
    idle = fake_cpu.idle + getattr(fake_cpu, "iowait", 0.0)
    for root in (tmp_path / "empty", fake_cpu_proc(tmp_path / "bad", me, "1 2 x", 1, 1, 0)):
        if root.name == "bad":
            (root / str(me) / "stat").write_text("garbage")
        m = Monitor(proc_root=root)
        calls.clear()
        assert m.cpu_times() == (pytest.approx(sum(fake_cpu) - guests), pytest.approx(idle))
        assert m.own_cpu_s() == pytest.approx(5.0)
        assert m.mem_available_bytes() == 2**30
        assert calls == ["cpu_times", "process", "memory"], root
        s = m.sensors()
        assert s["bg_cpu_util"] == "psutil.cpu_times() minus psutil.Process.cpu_times() of the monitored process"
        assert s["mem_avail_mb"] == "psutil.virtual_memory().available"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.access("/proc/stat", os.R_OK),
                    reason="no procfs on this platform")
def test_procfs_reads_agree_with_psutil_on_this_machine():
    """Counters read directly lie between psutil's read just before and just after (a tick of slack for the
    kernel's per-CPU accounting); the memory within a few MB of psutil's two reads."""
    m = Monitor()
    tick = 1.0 / CLOCK_TICKS
    ncpu = psutil.cpu_count() or 1

    def ps_cpu():
        t = psutil.cpu_times()
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        return total, t.idle + getattr(t, "iowait", 0.0)

    def ps_own():
        p = psutil.Process().cpu_times()
        return p.user + p.system

    assert m.sensors()["bg_cpu_util"].startswith("/proc/stat cpu line minus /proc/<pid>/stat")
    for _ in range(20):
        a, own_a, mem_a = ps_cpu(), ps_own(), psutil.virtual_memory().available
        d, own_d, mem_d = m.cpu_times(), m.own_cpu_s(), m.mem_available_bytes()
        b, own_b, mem_b = ps_cpu(), ps_own(), psutil.virtual_memory().available
        slack = ncpu * tick + 1e-9
        assert a[0] - slack <= d[0] <= b[0] + slack, (a, d, b)
        assert a[1] - slack <= d[1] <= b[1] + slack, (a, d, b)
        assert own_a - tick - 1e-9 <= own_d <= own_b + tick + 1e-9, (own_a, own_d, own_b)
        assert min(mem_a, mem_b) - 8 * 2**20 <= mem_d <= max(mem_a, mem_b) + 8 * 2**20, (mem_a, mem_d, mem_b)
        _busy(0.01)


def test_a_clock_from_psutil_is_reused_for_clock_reuse_s_a_sysfs_clock_is_read_every_time(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(psutil, "cpu_freq",
                        lambda: calls.append(1) or SimpleNamespace(current=2000.0 + len(calls), min=0.0, max=0.0))
    every = Monitor(sysfs_cpu=tmp_path / "none")
    assert [every.freq_mhz() for _ in range(3)] == [2001.0, 2002.0, 2003.0], "default: read every time"
    calls.clear()
    cached = Monitor(sysfs_cpu=tmp_path / "none", clock_reuse_s=30.0)
    assert [cached.freq_mhz() for _ in range(3)] == [2001.0] * 3 and len(calls) == 1
    cached._psutil_clock = (time.monotonic() - 31.0, cached._psutil_clock[1])  # 31 s later
    assert cached.freq_mhz() == 2002.0 and len(calls) == 2
    d = tmp_path / "sysfs" / "cpufreq" / "policy0"
    d.mkdir(parents=True)
    sysfs = Monitor(sysfs_cpu=tmp_path / "sysfs", clock_reuse_s=30.0)
    for khz in (1200000, 1800000):
        (d / "scaling_cur_freq").write_text(f"{khz}\n")
        assert sysfs.freq_mhz() == pytest.approx(khz / 1000)
    assert len(calls) == 2, "psutil is not asked where sysfs has the clock"


# --------------------------------------------------------------------------- files kept open between reads


def test_a_kept_open_file_reads_its_current_text_whole_and_reopens_after_an_error(tmp_path):
    f = tmp_path / "stat"
    assert ProcFile(str(f)).read() is None, "missing: None"
    f.write_text("cpu  1 2 3 4\n")
    pf = ProcFile(str(f))
    assert pf.read() == b"cpu  1 2 3 4\n"
    f.write_text("cpu  5 6 7 8\n")  # procfs regenerates the text at every read from offset 0
    assert pf.read() == b"cpu  5 6 7 8\n"
    big = "x" * 70000 + "\nprocs_running 3\n"  # more than the first buffer: read whole all the same
    f.write_text(big)
    assert pf.read() == big.encode() and pf.read() == big.encode()
    os.close(pf._fd)  # an error on the kept descriptor (here: closed behind its back) reopens the file
    assert pf.read() == big.encode()
    pf.close()
    f.unlink()
    assert pf.read() is None


def test_kept_open_thread_files_count_running_threads_and_follow_threads_that_come_and_go(tmp_path):
    me = 4242
    root = fake_proc(tmp_path / "proc", 3, {me: ["R", "S", "R"]})
    states = ThreadStates(me, root)
    assert states.running() == running_threads(me, root) == 2
    assert len(states._fds) == 3
    task = root / str(me) / "task"
    (task / str(me + 1) / "stat").write_text(f"{me + 1} (w) R 1\n")  # a thread starts running
    (task / str(me + 2) / "stat").unlink()
    (task / str(me + 2)).rmdir()  # a thread ends
    assert states.running() == running_threads(me, root) == 2
    assert sorted(states._fds) == [str(me), str(me + 1)], "the ended thread's file is closed"
    (task / str(me + 1) / "stat").unlink()
    (task / str(me + 1)).rmdir()  # one thread ends and another starts: as many threads as before
    (task / str(me + 7)).mkdir()
    (task / str(me + 7) / "stat").write_text(f"{me + 7} (w) R 1\n")
    assert states.running() == 2 and sorted(states._fds) == [str(me), str(me + 7)]
    (task / str(me + 7) / "stat").unlink()
    (task / str(me + 7)).rmdir()
    fake_proc(root, 3, {me: ["R", "R", "S", "R", "D"]})  # new threads
    assert states.running() == 3 and len(states._fds) == 5
    states.MAX_OPEN = 2  # beyond the cap, threads are read through their path at every count
    states.close()
    assert states.running() == 3 and len(states._fds) == 2
    assert ThreadStates(me + 99, root).running() is None, "no task folder: None"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.access("/proc/stat", os.R_OK),
                    reason="no procfs on this platform")
def test_kept_open_files_read_live_procfs():
    assert ProcFile("/proc/stat").read().startswith(b"cpu ")
    states = ThreadStates(os.getpid())
    for _ in range(3):
        assert states.running() >= 1, "the counting thread itself is running"
    done = threading.Event()
    t = threading.Thread(target=done.wait)
    t.start()
    try:
        states.running()
        assert str(t.native_id) in states._fds
    finally:
        done.set()
        t.join()
    end = time.monotonic() + 10
    while str(t.native_id) in os.listdir(states.task_dir):  # the OS thread may outlive join() for a moment
        assert time.monotonic() < end
        time.sleep(0.005)
    states.running()
    assert str(t.native_id) not in states._fds, "an ended thread's file is closed"
