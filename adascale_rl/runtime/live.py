"""The live context as the selector reads it: the recorder's monitor, and where each observation field comes from."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from adascale_rl.context.monitor import RUNNABLE_HZ, Monitor

#: where the selector reads each observation field (written into selector.json with the fields)
READ_FROM = {
    "clock_frac": "Monitor: Reading.freq_mhz (current clock) / device f_max_mhz",
    "clock_missing": "Monitor: Reading.freq_mhz is None",
    "bg_cpu_util": "Monitor: Reading.bg_cpu_util (other processes' CPU share since the last decision)",
    "bg_runnable_per_core": "Monitor: Reading.bg_runnable (run-queue sampler mean) / device cores",
    "mem_avail_frac": "Monitor: Reading.mem_avail_mb / device mem_total_mb",
    "mem_fit_largest": "Monitor: Reading.mem_avail_mb / (2 x largest variant peak)",
    "battery_frac": "Monitor: Reading.battery_pct / 100",
    "battery_missing": "Monitor: Reading.battery_pct is None",
    "plugged": "Monitor: Reading.plugged",
    "temp_headroom": "Monitor: Reading.soc_temp_c against device throttle_c",
    "temp_missing": "Monitor: Reading.soc_temp_c is None",
    "deadline_log": "app: Selector.set_mode(deadline_ms=...)",
    "load_log": "app: Selector.set_mode(rate_hz=...)",
    "last_latency_log": "app: mean of Selector.report(latency_ms) over the last period",
    "last_slowdown_log": "app: mean reported latency / catalog latency of the variant that ran",
    "slowdown_ema_log": "app: running mean (weight 0.5) of log2(mean reported latency / the performance model's "
                        "prediction for the measured clock, run queue and rate)",
    "last_miss_rate": "app: 1 - reports within the deadline / requests issued (rate x period)",
    "last_energy_frac": "app: Selector.report(energy_mj=...) if given, else the performance model's energy "
                        "per inference at the measured clock, over the device's dynamic power budget x period",
    "last_switched": "selector: the variant changed at the last decision",
    "last_oom": "app: Selector.report_oom() during the last period",
}
#: the context fields a decision cannot do without: masks and the policy need them (the others have a missing flag)
REQUIRED = ("bg_cpu_util", "mem_avail_mb")
#: seconds between two looks for a sensor the machine did not have (temperature, battery) or for new cpufreq
#: policies, and how long a clock read from /proc/cpuinfo is reused where there is no cpufreq: what the
#: monitor scans or parses for them costs ~0.1-0.2 ms a decision on a machine without them
RESCAN_S = 30.0


class SelectorMonitor(Monitor):
    """The recorder's monitor (the same readings), tuned for a read every decision: no clock cap (the
    observation holds the measured clock; the cap is a second cpufreq walk), the cpufreq folders listed once
    per :data:`RESCAN_S`, a temperature or battery sensor the machine lacks looked for again only every
    :data:`RESCAN_S` (until then it stays missing, as the observation's flag says), and, on a machine without
    cpufreq in sysfs, the clock psutil takes from ``/proc/cpuinfo`` re-read at most once per :data:`RESCAN_S`
    (``clock_reuse_s``; a sysfs cpufreq clock is read at every decision)."""

    def __init__(self, pid: int | None = None, runnable_hz: float | None = RUNNABLE_HZ, **kw):
        kw.setdefault("clock_reuse_s", RESCAN_S)
        super().__init__(pid, runnable_hz=runnable_hz, **kw)
        self._dirs: tuple[float, list] = (-math.inf, [])
        self._absent: dict[str, float] = {}

    def freq_cap_mhz(self) -> float | None:
        return None

    def _cpufreq_dirs(self):
        t, dirs = self._dirs
        now = time.monotonic()
        if now - t > RESCAN_S:
            dirs = super()._cpufreq_dirs()
            self._dirs = (now, dirs)
        return dirs

    def _unless_absent(self, name: str, read: Callable, missing: Any):
        since = self._absent.get(name)
        if since is not None and time.monotonic() - since < RESCAN_S:
            return missing
        value = read()
        if value == missing:
            self._absent[name] = time.monotonic()
        else:
            self._absent.pop(name, None)
        return value

    def soc_temp_c(self) -> float | None:
        return self._unless_absent("temp", super().soc_temp_c, None)

    def battery(self):
        return self._unless_absent("battery", super().battery, (None, None))
