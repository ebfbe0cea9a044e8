"""The live monitor on this machine: present sensors in range, missing ones None, never invented."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from adascale_rl.context import schema
from adascale_rl.context.monitor import Monitor, Reading, summary

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
    assert r.cpu_util + 1e-9 >= r.self_cpu_util
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
