"""What the profiler knows about the machine it runs on: CPU, clocks, power, background load.

Power: RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``) is used when readable; it is
root-only since Linux 5.10 and absent in most VMs. Otherwise energy is an *estimate*:
``ESTIMATED_BUSY_W_PER_CORE`` watts for every CPU-second the variant keeps a core busy
(process CPU time, which counts all torch threads, including OpenMP spin-waiting). The
estimate and its assumptions are written into the catalog's provenance and the device preset.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from adascale_rl._cpus import usable_cpus
from adascale_rl.context.recorder import cpu_model as _cpu_name

# 5th-generation Xeon Scalable parts (CPUID family 6, model 207) have TDPs of ~185-385 W over
# 16-64 cores: ~5.5-6 W per fully busy core at the top of that range. We take 5.5 W per busy
# vCPU, of which 1.5 W is counted as that core's share of package idle power. Assumptions,
# not measurements: no power counter is readable in this VM.
ESTIMATED_BUSY_W_PER_CORE = 5.5
ESTIMATED_IDLE_W_PER_CORE = 1.5
#: power a busy core draws above its idle share: what a catalog's energy_mj counts (dynamic energy above idle)
ESTIMATED_DYNAMIC_W_PER_CORE = ESTIMATED_BUSY_W_PER_CORE - ESTIMATED_IDLE_W_PER_CORE
POWER_RULE = ("ESTIMATE, not measured (RAPL not readable here): dynamic energy above idle = (5.5 W busy - 1.5 W idle) "
              "= 4.0 W per busy core x process CPU-time per inference (all torch threads, spin-waits included), the "
              "rule the derived catalogs follow (dynamic power x busy time). 5.5 W/core ~ package TDP / cores of a "
              "5th-gen Xeon Scalable (e.g. 350 W / 64 cores); 1.5 W/core of it taken as idle share (assumption)")


def cpu_model() -> str:
    return _cpu_name() or platform.machine()


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def is_virtual_machine() -> bool:
    flags = _cpuinfo_field("flags") or ""
    return "hypervisor" in flags.split()


def rapl_files() -> list[Path]:
    """Readable package-level RAPL energy counters (empty when absent or root-only)."""
    out = []
    for p in sorted(Path("/sys/class/powercap").glob("intel-rapl:*/energy_uj")):
        if p.parent.name.count(":") == 1:
            try:
                int(p.read_text())
                out.append(p)
            except (OSError, ValueError):
                pass
    return out


def read_rapl_uj() -> int | None:
    files = rapl_files()
    if not files:
        return None
    return sum(int(p.read_text()) for p in files)


def cpufreq_ladder() -> tuple[list[float], str]:
    """The DVFS operating points in MHz and where they came from."""
    base = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    try:
        avail = (base / "scaling_available_frequencies").read_text().split()
        if avail:
            return sorted({int(f) / 1000 for f in avail}), f"source: measured on this host: {base}/scaling_available_frequencies"
    except OSError:
        pass
    try:
        lo = int((base / "cpuinfo_min_freq").read_text()) / 1000
        hi = int((base / "cpuinfo_max_freq").read_text()) / 1000
        return [lo, hi] if lo < hi else [hi], (f"source: measured on this host: {base}/cpuinfo_min_freq and "
                                               "cpuinfo_max_freq (intermediate steps not listed by this driver)")
    except (OSError, ValueError):
        pass
    mhz = _cpuinfo_field("cpu MHz")
    f = float(mhz) if mhz else (psutil.cpu_freq().current if psutil.cpu_freq() else 2000.0)
    return [round(f, 1)], ("derived: cpufreq not readable here (no /sys/devices/system/cpu/cpu0/cpufreq; a VM); "
                           f"single operating point = 'cpu MHz' in /proc/cpuinfo ({f:g} MHz), the clock cannot be "
                           "changed or observed from inside")


@dataclass
class LoadMonitor:
    """Samples system CPU utilisation and this process's own share in the background.

    background = max(0, system busy fraction - CPU time of this process and its children
    (the timing / memory probes) / (interval x cores)): the CPU share other processes took.
    """

    interval_s: float = 0.5
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "LoadMonitor":
        proc = psutil.Process()
        n = psutil.cpu_count() or 1
        psutil.cpu_percent(None)

        def cpu_of_family(last: dict) -> float:
            used = 0.0
            procs = [proc]
            try:
                procs += proc.children(recursive=True)
            except psutil.Error:
                pass
            for p in procs:
                try:
                    c = sum(p.cpu_times()[:2])
                except psutil.Error:
                    continue
                used += c - last.get(p.pid, 0.0 if p.pid != proc.pid else c)
                last[p.pid] = c
            return used

        def run():
            last: dict[int, float] = {}
            cpu_of_family(last)
            last_t = time.perf_counter()
            while not self._stop.wait(self.interval_s):
                total = psutil.cpu_percent(None) / 100.0
                used = cpu_of_family(last)
                t = time.perf_counter()
                own = used / max(1e-9, (t - last_t) * n)
                last_t = t
                self.samples.append(min(1.0, max(0.0, total - own)))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        import numpy as np

        s = np.array(self.samples or [float("nan")])
        return {"mean": round(float(np.nanmean(s)), 3), "p95": round(float(np.nanpercentile(s, 95)), 3),
                "max": round(float(np.nanmax(s)), 3), "samples": len(self.samples),
                "method": f"psutil: system CPU busy fraction minus the CPU time of the profiler and its probe "
                          f"processes, every {self.interval_s:g} s "
                          "while timing (0 = other processes idle, 1 = all cores taken by others)"}


def machine_description(threads: int, background: dict | None = None) -> dict:
    import torch

    d = {
        "cpu_model": cpu_model(),
        "cpu_family_model": f"{_cpuinfo_field('cpu family')}/{_cpuinfo_field('model')}",
        "logical_cores": psutil.cpu_count(),
        "usable_cpus": usable_cpus(),  # the affinity mask's: what the timing and the busy processes ran on
        "threads_used": threads,
        "virtual_machine": is_virtual_machine(),
        "mem_total_mb": round(psutil.virtual_memory().total / 2**20),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "quantized_engine": "x86",
        "rapl_readable": bool(rapl_files()),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "profiled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if background is not None:
        d["background_cpu_util"] = background
    return d
