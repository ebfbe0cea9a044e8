"""Device physics: how a variant behaves in a context, one decision interval at a time.

Each effect is a small function with units in its argument names, so it can be
tested on its own and reused by planners (the one-step planner and the
clairvoyant oracle simulate with exactly these functions). :func:`step` composes
them into one transition of the endogenous state (:class:`PhysicsState`) given
the exogenous context of the interval (:class:`Exo`) and the interval's noise
draw (:class:`Noise`).

Modelling choices and their sources are documented per function; constants of a
device come from its preset (``envs/devices/*.yaml``), constants of a variant
from its catalog (``envs/catalogs/*.json``).
"""

from __future__ import annotations

import bisect
import math
from typing import NamedTuple, Sequence

from adascale_rl.device.catalog import Catalog, Variant
from adascale_rl.device.presets import DevicePreset

#: per-frame latency dispersion within one interval (log-normal sigma). Derived:
#: the Pi 4 ShuffleNetV2 report in CALIBRATION.md (60 ms best, spikes to 128 ms)
#: is modelled by step-level spikes; within an interval frames vary by ~10 %.
FRAME_SIGMA = 0.10
_SQRT2 = math.sqrt(2.0)
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)


# --------------------------------------------------------------------------- clock

def snap_down(freq_mhz: float, ladder_mhz: Sequence[float]) -> float:
    """Highest operating point not above ``freq_mhz`` (the lowest one if all are above)."""
    i = bisect.bisect_right(ladder_mhz, freq_mhz + 1e-9) - 1
    return ladder_mhz[max(i, 0)]


def clock_mhz(trace_cap_mhz: float, thermal_cap_mhz: float, saver_cap_mhz: float,
              ladder_mhz: Sequence[float]) -> float:
    """Clock in effect: the lowest of the exogenous cap, the thermal limit and the battery saver cap."""
    return snap_down(min(trace_cap_mhz, thermal_cap_mhz, saver_cap_mhz), ladder_mhz)


def battery_saver_cap_mhz(device: DevicePreset, battery_pct: float, plugged: bool) -> float:
    """The OS battery saver caps the clock below its threshold while on battery."""
    if device.battery_wh is None or plugged or battery_pct >= device.saver_threshold_pct:
        return math.inf
    return device.saver_cap_mhz


# --------------------------------------------------------------------------- latency

def amdahl_speedup(parallel_frac: float, cores: float) -> float:
    """Amdahl's law: speed-up on ``cores`` cores of a job with this parallel fraction."""
    return 1.0 / ((1.0 - parallel_frac) + parallel_frac / max(cores, 1e-9))


def effective_cores(cores: int, bg_cpu_util: float) -> float:
    """Cores the inference gets when other processes use ``bg_cpu_util`` of the CPU.

    Free cores are the inference's; cores busy with background work are time-shared
    fairly with one inference thread (half each). With the CPU fully loaded the
    inference therefore gets half the machine: slow-downs of 1.3-2x from contention
    alone, up to ~3x with noise spikes, as the co-run figures in CALIBRATION.md
    (1.5-3x) report. Never fewer than one core's half.
    """
    return max(cores * (1.0 - 0.5 * bg_cpu_util), 0.5)


def clock_factor(compute_bound_frac: float, freq_mhz: float, f_max_mhz: float) -> float:
    """Latency multiplier from running below the top clock: only the compute-bound part scales."""
    return compute_bound_frac * (f_max_mhz / freq_mhz) + (1.0 - compute_bound_frac)


def median_latency_ms(v: Variant, freq_mhz: float, f_max_mhz: float, cores: int, bg_cpu_util: float,
                      noise: float) -> float:
    """Median per-frame latency in this interval: reference latency x clock x contention x noise."""
    contention = amdahl_speedup(v.parallel_frac, cores) / amdahl_speedup(v.parallel_frac,
                                                                         effective_cores(cores, bg_cpu_util))
    return v.latency_ms * clock_factor(v.compute_bound_frac, freq_mhz, f_max_mhz) * contention * noise


# --------------------------------------------------------------------------- serving

class Serving(NamedTuple):
    served_frac: float    # requests answered / requests issued
    on_time_frac: float   # requests answered within the deadline / requests issued
    busy_s: float         # time the CPU spent on inference in the interval
    mean_latency_ms: float


def serve(median_ms: float, rate_hz: float, deadline_ms: float, dt_s: float, blocked_ms: float = 0.0,
          frame_sigma: float = FRAME_SIGMA) -> Serving:
    """Serve requests arriving at ``rate_hz`` for ``dt_s`` seconds, one at a time.

    Per-frame latency is log-normal around ``median_ms``. Requests arriving while
    the app is blocked (loading a variant) are dropped; when frames take longer
    than the inter-arrival time the server falls behind and drops the excess.
    A served frame is on time when its latency is within the deadline.
    """
    mean_ms = median_ms * math.exp(0.5 * frame_sigma * frame_sigma)
    if rate_hz <= 0:
        return Serving(1.0, 1.0, 0.0, mean_ms)
    open_s = max(dt_s - blocked_ms / 1000.0, 0.0)
    issued = rate_hz * dt_s
    served = min(rate_hz * open_s, open_s * 1000.0 / mean_ms)
    served_frac = served / issued
    z = (math.log(deadline_ms) - math.log(median_ms)) / frame_sigma
    within = 0.5 * (1.0 + math.erf(z / _SQRT2))
    return Serving(served_frac, served_frac * within, served * mean_ms * 0.001, mean_ms)


# --------------------------------------------------------------------------- power, heat, battery

def dynamic_power_w(device: DevicePreset, freq_mhz: float, busy_cores_frac: float) -> float:
    """Dynamic power above idle: grows as (f/f_max)^k with clock and linearly with busy cores."""
    return device.dyn_w_max * (freq_mhz / device.f_max_mhz) ** device.freq_exponent * min(max(busy_cores_frac, 0.0), 1.0)


def inference_power_w(v: Variant, device: DevicePreset, freq_mhz: float, eff_cores: float) -> float:
    """Power drawn above idle while the variant runs.

    At the reference point (top clock, all cores free) it is energy_mj / latency_ms
    (mJ/ms = W). It scales as (f/f_max)^k with clock and with the cores actually
    used (the Amdahl speed-up achieved on the cores the inference gets).
    """
    p_ref = v.energy_mj / v.latency_ms
    used = amdahl_speedup(v.parallel_frac, eff_cores) / amdahl_speedup(v.parallel_frac, device.cores)
    return p_ref * (freq_mhz / device.f_max_mhz) ** device.freq_exponent * used


def thermal_step_c(temp_c: float, ambient_c: float, power_w: float, resistance_c_per_w: float,
                   time_constant_s: float, dt_s: float) -> float:
    """First-order thermal model: relax towards ambient + R x P with time constant tau (exact for constant P)."""
    steady = ambient_c + resistance_c_per_w * power_w
    return steady + (temp_c - steady) * math.exp(-dt_s / time_constant_s)


def throttle_step(level: int, temp_c: float, throttle_c: float, release_c: float, top_level: int) -> int:
    """Governor with hysteresis: one DVFS step down above ``throttle_c``, one up below ``release_c``."""
    if temp_c > throttle_c:
        return max(level - 1, 0)
    if temp_c < release_c:
        return min(level + 1, top_level)
    return level


def battery_pct_after(battery_pct: float, energy_j: float, battery_wh: float) -> float:
    """State of charge after drawing ``energy_j`` from a ``battery_wh`` battery."""
    return max(battery_pct - 100.0 * energy_j / (battery_wh * 3600.0), 0.0)


# --------------------------------------------------------------------------- memory and switching

def switch_load_ms(v: Variant, device: DevicePreset) -> float:
    """Time to bring a variant in: read its file, then initialise it."""
    return 1000.0 * v.size_mb / device.storage_read_mb_s + device.model_init_ms


def switch_peak_mb(old: Variant | None, new: Variant, shared_mb: float = 0.0) -> float:
    """Memory needed while switching: the new variant loads while the old one is still resident.

    ``shared_mb`` is the runtime overhead both peaks include (the catalog's
    ``runtime_overhead_mb``): one process holds it once.
    """
    if old is None:
        return new.peak_mem_mb
    return new.peak_mem_mb + old.peak_mem_mb - shared_mb


# --------------------------------------------------------------------------- one interval

class Exo(NamedTuple):
    """Exogenous context of one interval, already in this device's terms."""

    freq_cap_mhz: float
    bg_cpu_util: float
    mem_avail_mb: float
    ambient_temp_c: float
    battery_pct: float
    plugged: bool
    request_rate_hz: float
    deadline_ms: float


class Noise(NamedTuple):
    """The interval's latency noise: a log-normal draw times a spike factor (1 when no spike)."""

    latency: float


class PhysicsState(NamedTuple):
    loaded: int             # catalog index of the variant the app runs (resident unless killed)
    temp_c: float
    thermal_level: int      # index into the DVFS ladder of the thermal limit
    battery_used_j: float   # energy the app drew from the battery since it was last plugged
    killed: bool = False    # OOM-killed last interval: nothing is resident, the next variant loads alone


class Outcome(NamedTuple):
    variant: int
    freq_mhz: float
    latency_ms: float        # mean latency of the interval's frames
    serving: Serving
    accuracy: float
    energy_j: float          # inference (and loading) energy above idle
    power_w: float           # whole device, including background load
    mem_mb: float            # the app's peak memory in the interval
    switched: bool
    oom: bool
    temp_c: float
    battery_pct: float


class DevicePhysics:
    """A device preset and a catalog, with the transition function of the simulator."""

    def __init__(self, device: DevicePreset, catalog: Catalog, frame_sigma: float = FRAME_SIGMA):
        self.device = device
        self.catalog = catalog
        self.frame_sigma = frame_sigma
        self.ladder = list(device.dvfs_mhz)
        self.top_level = len(self.ladder) - 1
        self.load_ms = [switch_load_ms(v, device) for v in catalog.variants]
        self.f_max_mhz = device.f_max_mhz
        self.shared_mb = catalog.runtime_overhead_mb
        # Amdahl speed-up of each variant on all cores (the reference point), used every step
        self._s_all = [amdahl_speedup(v.parallel_frac, device.cores) for v in catalog.variants]
        self.has_battery = device.battery_wh is not None
        self._sig_corr = math.exp(0.5 * frame_sigma * frame_sigma)
        self._decay: dict[float, float] = {}  # thermal decay per interval length
        self._dyn_all: dict[float, float] = {}  # dynamic power with all cores busy, per operating point
        # the device and variant constants step() reads, as plain attributes and rows
        self._cores = device.cores
        self._dyn_w_max = device.dyn_w_max
        self._freq_exponent = device.freq_exponent
        self._idle_w = device.idle_w
        self._resistance = device.thermal_resistance_c_per_w
        self._throttle_c = device.throttle_c
        self._release_c = device.release_c
        self._saver_cap_mhz = device.saver_cap_mhz if self.has_battery else math.inf
        self._saver_threshold_pct = device.saver_threshold_pct
        self._battery_j = device.battery_wh * 3600.0 if self.has_battery else math.nan  # as battery_pct_after()
        self._variant_rows = [
            (v.peak_mem_mb, 1.0 - v.parallel_frac, v.parallel_frac, s_all, v.compute_bound_frac,
             1.0 - v.compute_bound_frac, v.latency_ms, v.energy_mj / v.latency_ms, v.accuracy, load_ms,
             load_ms / 1000.0)
            for v, s_all, load_ms in zip(catalog.variants, self._s_all, self.load_ms)]

    def initial_state(self, exo: Exo, loaded: int) -> PhysicsState:
        """At rest with the background load, before the app's own work, where the governor
        would be after a long time under it.

        Unthrottled if the steady temperature at full clock stays at or below the throttle
        point. Otherwise at the highest operating point whose steady temperature does (the
        lowest if none does), with that temperature, if it is at or above the release point:
        the governor rests there. If it is below, the governor cycles between that point and
        the next one up (up when the temperature falls to the release point, down when it
        passes the throttle point): the state starts on that cycle, at the upper point with
        the temperature at the throttle point.
        """
        d = self.device
        cap = snap_down(min(exo.freq_cap_mhz, d.f_max_mhz), self.ladder)

        def steady(level: int) -> float:
            freq = min(cap, self.ladder[level])
            return exo.ambient_temp_c + d.thermal_resistance_c_per_w * (
                d.idle_w + dynamic_power_w(d, freq, exo.bg_cpu_util))

        level = self.top_level
        temp = steady(level)
        while temp > d.throttle_c and level > 0:
            level -= 1
            temp = steady(level)
        if level < self.top_level and temp < d.release_c:
            level, temp = level + 1, d.throttle_c
        return PhysicsState(loaded=loaded, temp_c=temp, thermal_level=level, battery_used_j=0.0)

    def battery_pct(self, state: PhysicsState, exo: Exo) -> float:
        if not self.has_battery or state.battery_used_j == 0.0:
            return exo.battery_pct
        return battery_pct_after(exo.battery_pct, state.battery_used_j, self.device.battery_wh)

    def step(self, state: PhysicsState, target: int, exo: Exo, noise: Noise, dt_s: float) -> tuple[PhysicsState, Outcome]:
        """One interval. The small functions above, composed and inlined for speed (this is the
        environment's hot path); ``tests/device/test_physics.py`` checks it against them.
        Constants of a variant or of an operating point are read from rows and caches built
        in ``__init__`` (the same floats the expressions would compute each time).
        """
        loaded, temp_c, level, used_j, killed = state
        freq_cap, bg, mem_avail, ambient_c, battery_pct, plugged, rate, deadline_ms = exo
        ladder = self.ladder
        # clock: min(trace cap, thermal limit, battery saver), snapped down to the ladder
        cap = freq_cap
        thermal = ladder[level]
        if thermal < cap:
            cap = thermal
        saver_cap = self._saver_cap_mhz
        if self.has_battery and not plugged and saver_cap < cap:
            battery = battery_pct
            if used_j != 0.0:  # battery_pct_after(), inlined
                battery = battery_pct - 100.0 * used_j / self._battery_j
                if 0.0 > battery:
                    battery = 0.0
            if battery < self._saver_threshold_pct:
                cap = saver_cap
        i = bisect.bisect_right(ladder, cap + 1e-9) - 1
        freq = ladder[i if i > 0 else 0]
        switched = target != loaded
        peak, serial, par, s_all, cb, serial_cb, lat_ms, p_ref, accuracy, load_ms, load_s = self._variant_rows[target]
        # after an OOM kill the app restarts empty: whatever it runs next loads alone
        loading = switched or killed
        if loading and not killed:
            mem = peak + self._variant_rows[loaded][0] - self.shared_mb
        else:
            mem = peak
        oom = mem > mem_avail
        # latency: reference x clock (compute-bound part) x contention (Amdahl) x noise
        eff = self._cores * (1.0 - 0.5 * bg)
        if eff < 0.5:
            eff = 0.5
        used = (1.0 / (serial + par / eff)) / s_all
        median = lat_ms * (cb * (self.f_max_mhz / freq) + serial_cb) / used * noise[0]
        mean_ms = median * self._sig_corr
        if oom:
            # killed by the low-memory killer: nothing served this interval; the app restarts
            # with the variant it asked for.
            serving = _new_tuple(Serving, (0.0, 0.0, 0.0, mean_ms))
        elif rate <= 0:
            serving = _new_tuple(Serving, (1.0, 1.0, 0.0, mean_ms))
        else:  # serve(), inlined
            open_s = dt_s - load_ms * 0.001 if loading else dt_s
            if open_s < 0.0:
                open_s = 0.0
            served = rate * open_s
            capacity = open_s * 1000.0 / mean_ms
            if capacity < served:
                served = capacity
            served_frac = served / (rate * dt_s)
            z = (math.log(deadline_ms) - math.log(median)) / self.frame_sigma
            serving = _new_tuple(Serving, (served_frac, served_frac * 0.5 * (1.0 + math.erf(z / _SQRT2)),
                                           served * mean_ms * 0.001, mean_ms))
        # energy and power, sharing (f / f_max)^k
        dyn_all = self._dyn_all.get(freq)
        if dyn_all is None:
            dyn_all = self._dyn_all[freq] = self._dyn_w_max * (freq / self.f_max_mhz) ** self._freq_exponent
        energy = p_ref * dyn_all / self._dyn_w_max * used * serving[2]
        if loading:
            energy += dyn_all / self._cores * (load_s if load_s < dt_s else dt_s)
        busy_w = dyn_all * bg + energy / dt_s
        power = self._idle_w + (busy_w if busy_w < dyn_all else dyn_all)
        # first-order thermal model and the governor's hysteresis
        decay = self._decay.get(dt_s)
        if decay is None:
            decay = self._decay[dt_s] = math.exp(-dt_s / self.device.thermal_time_constant_s)
        steady = ambient_c + self._resistance * power
        temp = steady + (temp_c - steady) * decay
        if temp > self._throttle_c:
            level = level - 1 if level > 0 else 0
        elif temp < self._release_c:
            level = level + 1 if level < self.top_level else self.top_level
        drawn = 0.0 if (plugged or not self.has_battery) else used_j + energy
        battery = battery_pct
        if drawn != 0.0:  # battery_pct_after(), inlined
            battery = battery_pct - 100.0 * drawn / self._battery_j
            if 0.0 > battery:
                battery = 0.0
        return (_new_tuple(PhysicsState, (target, temp, level, drawn, oom)),
                _new_tuple(Outcome, (target, freq, mean_ms, serving, accuracy, energy, power, mem, switched, oom,
                                     temp, battery)))

    # ------------------------------------------------------------------ planning
    def interval_table(self, freq_mhz: float, exo: Exo, noise: Noise, dt_s: float, killed: bool = False):
        """Outcomes of every (loaded, target) pair for one interval at a given clock, vectorised.

        Planners that hold the clock trajectory fixed (the clairvoyant oracle's dynamic
        programme) use this instead of n x n calls to :meth:`step`; it is the same
        model, and ``tests/device/test_physics.py`` checks it against :meth:`step`
        pair by pair. Returns a dict of arrays indexed ``[loaded, target]``:
        ``on_time_frac``, ``energy_j``, ``mem_mb``, ``oom``, ``switched``, ``latency_ms``.
        With ``killed`` the app was OOM-killed the interval before: every target loads alone.
        """
        import numpy as np

        d = self.device
        cat = self.catalog.variants
        n = len(cat)
        lat_ref = np.array([v.latency_ms for v in cat])
        cb = np.array([v.compute_bound_frac for v in cat])
        pf = np.array([v.parallel_frac for v in cat])
        peak = np.array([v.peak_mem_mb for v in cat])
        e_ref = np.array([v.energy_mj for v in cat])
        load_ms = np.array(self.load_ms)
        eff = effective_cores(d.cores, exo.bg_cpu_util)
        s_all = 1.0 / ((1.0 - pf) + pf / d.cores)
        s_eff = 1.0 / ((1.0 - pf) + pf / max(eff, 1e-9))
        median = lat_ref * clock_factor(cb, freq_mhz, d.f_max_mhz) * (s_all / s_eff) * noise.latency
        sig = self.frame_sigma
        mean = median * math.exp(0.5 * sig * sig)
        if exo.request_rate_hz <= 0:
            on_keep = np.ones(n)
            on_switch = np.ones(n)
            busy_keep = np.zeros(n)
            busy_switch = np.zeros(n)
        else:
            from math import erf, log

            within = 0.5 * (1.0 + np.array([erf((log(exo.deadline_ms) - log(m)) / sig / _SQRT2) for m in median]))
            issued = exo.request_rate_hz * dt_s
            open_keep = dt_s
            open_switch = np.maximum(dt_s - load_ms / 1000.0, 0.0)
            served_keep = np.minimum(exo.request_rate_hz * open_keep, open_keep * 1000.0 / mean)
            served_switch = np.minimum(exo.request_rate_hz * open_switch, open_switch * 1000.0 / mean)
            on_keep = served_keep / issued * within
            on_switch = served_switch / issued * within
            busy_keep = served_keep * mean / 1000.0
            busy_switch = served_switch * mean / 1000.0
        p_inf = (e_ref / lat_ref) * (freq_mhz / d.f_max_mhz) ** d.freq_exponent * (s_eff / s_all)
        load_j = dynamic_power_w(d, freq_mhz, 1.0 / d.cores) * np.minimum(load_ms / 1000.0, dt_s)
        switched = ~np.eye(n, dtype=bool)
        loading = np.ones((n, n), dtype=bool) if killed else switched
        if killed:
            mem = np.broadcast_to(peak[None, :], (n, n)).copy()
        else:
            mem = np.where(switched, peak[:, None] + peak[None, :] - self.shared_mb, peak[None, :])
        oom = mem > exo.mem_avail_mb
        on_time = np.where(loading, on_switch[None, :], on_keep[None, :])
        on_time = np.where(oom, 0.0, on_time)
        energy = np.where(loading, (p_inf * busy_switch + load_j)[None, :], (p_inf * busy_keep)[None, :])
        energy = np.where(oom, np.where(loading, load_j[None, :], 0.0), energy)
        lat = np.broadcast_to(mean[None, :], (n, n))
        return {"on_time_frac": on_time, "energy_j": energy, "mem_mb": mem, "oom": oom, "switched": switched,
                "latency_ms": lat}
