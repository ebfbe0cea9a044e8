"""The live resource context of this machine, read with psutil.

:class:`Monitor` turns the operating system's counters into the context fields of
:mod:`adascale_rl.context.schema`. What the platform does not expose is reported
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
"""

from __future__ import annotations

import glob
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from adascale_rl.context import schema

#: sysfs folder holding the per-CPU cpufreq directories on Linux
SYSFS_CPU = "/sys/devices/system/cpu"
#: temperature sensors that read the CPU/SoC die, most specific first (psutil chip names)
_SOC_SENSORS = ("cpu_thermal", "cpu-thermal", "soc_thermal", "coretemp", "k10temp", "zenpower",
                "cpu0_thermal", "tsens_tz_sensor0", "thermal_zone0", "acpitz")
#: context fields the machine itself can tell (the others are the app's)
MACHINE_FIELDS = ("bg_cpu_util", "mem_avail_mb", "freq_cap_mhz", "battery_pct", "plugged")
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

    The first :meth:`read` measures CPU use since the monitor was created; each
    later one since the previous read. Call it at a fixed period.
    """

    def __init__(self, pid: int | None = None, *, sysfs_cpu: str | os.PathLike = SYSFS_CPU):
        self.process = psutil.Process(pid)
        self.ncpu = psutil.cpu_count() or 1
        self.sysfs_cpu = Path(sysfs_cpu)
        self._last = self._cpu_counters()

    # ------------------------------------------------------------------ CPU

    def _cpu_counters(self) -> tuple[float, float, float, float]:
        """(monotonic time, all cores' total CPU seconds, busy CPU seconds, this process's CPU seconds)."""
        t = psutil.cpu_times()
        total = sum(t)
        # guest time is already counted in user/nice on Linux (psutil does the same)
        total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
        idle = t.idle + getattr(t, "iowait", 0.0)
        try:
            p = self.process.cpu_times()
            own = p.user + p.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            own = 0.0
        return time.monotonic(), total, total - idle, own

    def _cpu_shares(self) -> tuple[float, float, float, float]:
        now = self._cpu_counters()
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

    # ------------------------------------------------------------------ clocks

    def _cpufreq_dirs(self) -> list[Path]:
        policies = sorted(self.sysfs_cpu.glob("cpufreq/policy*"))
        if policies:
            return policies
        return sorted(Path(p) for p in glob.glob(str(self.sysfs_cpu / "cpu[0-9]*" / "cpufreq")))

    def _sysfs_max(self, filename: str) -> float | None:
        values = [v for d in self._cpufreq_dirs() if (v := _read_khz(str(d / filename))) is not None]
        return max(values) if values else None

    def freq_cap_mhz(self) -> float | None:
        """The clock cap: highest ``scaling_max_freq``, else psutil's hardware maximum, else None."""
        cap = self._sysfs_max("scaling_max_freq")
        if cap is not None:
            return cap
        try:
            f = psutil.cpu_freq()
        except (OSError, NotImplementedError, AttributeError):
            f = None
        if f is not None and f.max and f.max > 0:
            return float(f.max)
        return None

    def freq_mhz(self) -> float | None:
        """The current clock (highest ``scaling_cur_freq``, else psutil), or None."""
        cur = self._sysfs_max("scaling_cur_freq")
        if cur is not None:
            return cur
        try:
            f = psutil.cpu_freq()
        except (OSError, NotImplementedError, AttributeError):
            f = None
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
        d_wall, total, own, bg = self._cpu_shares()
        pct, plugged = self.battery()
        return Reading(
            time_s=time.monotonic(), interval_s=d_wall, bg_cpu_util=bg, cpu_util=total, self_cpu_util=own,
            mem_avail_mb=psutil.virtual_memory().available / 2**20,
            freq_cap_mhz=self.freq_cap_mhz(), freq_mhz=self.freq_mhz(),
            battery_pct=pct, plugged=plugged, soc_temp_c=self.soc_temp_c(),
        )

    def sample(self) -> dict[str, float | None]:
        """The context fields (schema names, no ``t_s``), ``None`` where the platform has nothing."""
        return self.read().context()

    def sensors(self) -> dict[str, str | None]:
        """Where each reading comes from on this machine; ``None`` for what is missing."""
        caps = self._sysfs_max("scaling_max_freq") is not None
        try:
            f = psutil.cpu_freq()
        except (OSError, NotImplementedError, AttributeError):
            f = None
        pct, plugged = self.battery()
        temp = self.soc_temp_c()
        cur_sysfs = self._sysfs_max("scaling_cur_freq") is not None
        return {
            "bg_cpu_util": "psutil.cpu_times() minus psutil.Process.cpu_times() of the monitored process",
            "mem_avail_mb": "psutil.virtual_memory().available",
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
