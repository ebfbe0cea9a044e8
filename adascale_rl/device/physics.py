"""Device physics: the simulator's state transition, one decision interval at a time.

What a variant does in a context (latency, contention, serving, energy) is the one
performance model of :mod:`adascale_rl.device.model`; this module adds the device's
state around it: the clock (exogenous cap, thermal governor, battery saver), heat,
battery and memory (switches, OOM kills). Each effect is a small function with units in
its argument names. :meth:`DevicePhysics.step` composes one transition of the endogenous
state (:class:`PhysicsState`) given the exogenous context of the interval (:class:`Exo`)
and the interval's noise draw (:class:`Noise`); it inlines the model for speed (it is the
environment's hot path) and ``tests/device/test_model.py`` ties it to the batched model
on 10,000 random cases. :meth:`DevicePhysics.interval_table` is the batched model for
every (loaded, target) pair, for planners.

Constants of a device come from its preset (``envs/devices/*.yaml``), constants of a
variant from its catalog (``envs/catalogs/*.json``); each cites its source.
"""

from __future__ import annotations

import bisect
import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from adascale_rl.device import model
from adascale_rl.device.catalog import Catalog, Variant
from adascale_rl.device.model import FRAME_SIGMA, SATURATION_ONSET, Serving, VariantTable, erf_scalar
from adascale_rl.device.presets import DevicePreset

_ONSET_SPAN = 1.0 - SATURATION_ONSET  # the blend's width (as model.contention divides by it)

_SQRT1_2 = math.sqrt(0.5)
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


# --------------------------------------------------------------------------- power, heat, battery

def dynamic_power_w(device: DevicePreset, freq_mhz: float, busy_cores_frac: float) -> float:
    """Dynamic power above idle: grows as (f/f_max)^k with clock and linearly with busy cores."""
    return device.dyn_w_max * (freq_mhz / device.f_max_mhz) ** device.freq_exponent * min(max(busy_cores_frac, 0.0), 1.0)


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
    bg_runnable: float       # runnable threads of other processes (estimated from bg_cpu_util x cores if not recorded)
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
    latency_ms: float        # mean response time of the interval's served requests
    serving: Serving
    accuracy: float
    energy_j: float          # inference (and loading) energy above idle
    power_w: float           # whole device, including background load
    mem_mb: float            # the app's peak memory in the interval
    switched: bool
    oom: bool
    temp_c: float
    battery_pct: float
    service_ms: float        # the isolated service time of one request at this clock, with the noise


class DevicePhysics:
    """A device preset and a catalog, with the transition function of the simulator.

    Two tables of the catalog: ``table``, the app's performance model (the catalog's numbers:
    :meth:`expected_latency_ms`, the observation's prediction, what planners and the prior read),
    and ``world``, what the simulated host does (:meth:`step`, :meth:`step_batch`,
    :meth:`interval_table`): the same, with service time and work energy scaled by the preset's
    ``service_scale`` (or per variant, ``variant_scale``) and the wake-up cost by ``variant_wake`` (the same
    object when nothing is scaled)."""

    def __init__(self, device: DevicePreset, catalog: Catalog, frame_sigma: float = FRAME_SIGMA,
                 variant_scale: Mapping[str, float] | None = None, variant_wake: Mapping[str, float] | None = None):
        self.device = device
        self.catalog = catalog
        self.frame_sigma = frame_sigma
        # the app's model of its variants (the observation's prediction, the planners' tables, the exported prior)
        self.table = VariantTable(device, catalog, frame_sigma)
        # the world's: the catalog on this host (service scaled by the preset's service_scale, each variant's
        # wake-up cost by its own factor where given; the same object if neither changes anything)
        self.service_scale = float(getattr(device, "service_scale", 1.0))
        # ``variant_scale``: the world's service over the catalog's latency for the variants it names (a host
        # that speeds its variants up unevenly, as a live run's probe measures it); the others at service_scale
        self.variant_scale = {} if not variant_scale else dict(variant_scale)
        scale = np.array([self.variant_scale.get(v.id, self.service_scale) for v in catalog.variants])
        # ``variant_wake``: the world's wake-up cost over the scheduler's line for the variants it names (a host
        # whose variants wake up unevenly, as a live run's probe measures them); the others on the line
        self.variant_wake = {} if not variant_wake else dict(variant_wake)
        wake = [self.variant_wake.get(v.id, 1.0) for v in catalog.variants]
        self.world = self.table.on_host(scale, wake)
        self.world_arrays = self.world.arrays()
        self.ladder = list(device.dvfs_mhz)
        self.top_level = len(self.ladder) - 1
        self.load_ms = self.table.load_ms.tolist()
        self.f_max_mhz = device.f_max_mhz
        self.shared_mb = catalog.runtime_overhead_mb
        self.has_battery = device.has_battery
        self._sig_corr = math.exp(0.5 * frame_sigma * frame_sigma)
        self._half_s2 = 0.5 * frame_sigma * frame_sigma
        self._ef = math.exp(frame_sigma * frame_sigma) - 1.0
        self._decay: dict[float, float] = {}  # thermal decay per interval length
        self._dyn_all: dict[float, float] = {}  # dynamic power with all cores busy, per operating point
        # the device and variant constants step() reads, as plain attributes and rows
        t = self.table
        self._cores = t.cores
        sc = t.sched  # the scheduler's constants as one tuple: _contention() unpacks them in one go
        self._sched_consts = (sc.tick_ms, 0.9 * sc.tick_ms, sc.wake_wait, sc.wake_lag_ms, sc.wake_slice_ms,
                              sc.idle_wake_ms, sc.idle_wake_per_ms, sc.idle_sleep_ms, sc.wake_cv,
                              float(t.cores), float(t.threads), sc.corun_stretch,
                              max(float(t.cores) - float(t.threads), 1.0))
        self._dyn_w_max = device.dyn_w_max
        self._freq_exponent = device.freq_exponent
        self._idle_w = device.idle_w
        self._resistance = device.thermal_resistance_c_per_w
        self._throttle_c = device.throttle_c
        self._release_c = device.release_c
        self._saver_cap_mhz = device.saver_cap_mhz if self.has_battery else math.inf
        self._saver_threshold_pct = device.saver_threshold_pct
        self._battery_j = device.battery_wh * 3600.0 if self.has_battery else math.nan  # as battery_pct_after()
        w = self.world  # the world's rows (service and energy from its table: scaled there, once)
        self._variant_rows = [
            (v.peak_mem_mb, v.compute_bound_frac, 1.0 - v.compute_bound_frac, lat, e_mj * 0.001, v.accuracy,
             load_ms * 0.001)
            for v, lat, e_mj, load_ms in zip(catalog.variants, w.latency_ms.tolist(), w.energy_mj.tolist(),
                                             self.load_ms)]
        self._wake_scale = [1.0] * len(catalog.variants) if w.wake_scale is None else w.wake_scale.tolist()
        self._app_latency = self.table.latency_ms.tolist()  # the app's (expected_latency_ms)
        # step_batch(): the ladder as an array, and the dynamic power with all cores busy at each operating
        # point, computed as step() computes (and caches) it
        self._ladder_arr = np.asarray(self.ladder, dtype=np.float64)
        self._dyn_ladder = np.array([self._dyn_w_max * (f / self.f_max_mhz) ** self._freq_exponent
                                     for f in self.ladder], dtype=np.float64)

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

    def clock(self, state: PhysicsState, exo: Exo) -> float:
        """The clock in effect for ``state`` under ``exo``: the lowest of the trace's cap, the thermal
        limit and the battery saver (on the state's charge), snapped down to the ladder. The
        environment reads the first observation's clock from here, and :meth:`step` computes the same."""
        saver = battery_saver_cap_mhz(self.device, self.battery_pct(state, exo), exo.plugged)
        return clock_mhz(exo.freq_cap_mhz, self.ladder[state.thermal_level], saver, self.ladder)

    def expected_latency_ms(self, variant: int, freq_mhz: float, bg_runnable: float, rate_hz: float,
                            deadline_ms: float) -> float:
        """The mean response time the app's profiler model expects of ``variant``'s served requests (no noise):
        :func:`adascale_rl.device.model.expected_latency_ms` for one variant, inlined."""
        _, cb, serial_cb, _, _, _, _ = self._variant_rows[variant]
        lat = self._app_latency[variant] * (cb * (self.f_max_mhz / freq_mhz) + serial_cb)
        p, delay, base, _, _, wake_frac = self._contention(lat, rate_hz, bg_runnable)
        return self._served_mean(base, p, delay, wake_frac, deadline_ms)[0]

    def _served_mean(self, base: float, p: float, delay: float, wake_frac: float,
                     deadline_ms: float) -> tuple[float, float]:
        """:func:`adascale_rl.device.model.served_mean_ms` (scalars), and the share of the requests that went
        stale waiting at wake-up (:func:`adascale_rl.device.model.stale_share`), which :meth:`step` serves less."""
        wait = delay if delay > 1e-9 else 1e-9
        tail = math.exp(-deadline_ms / wait)
        waits = p * wake_frac
        stale = waits * tail
        return (base * self._sig_corr + ((p - waits) * delay + waits * (wait - (deadline_ms + wait) * tail))
                / (1.0 - stale)), stale

    def _contention(self, lat: float, rate: float, b: float,
                    wake_scale: float = 1.0) -> tuple[float, float, float, float, float, float]:
        """:func:`adascale_rl.device.model.contention` for one variant (scalars)."""
        (tick, wake, wake_wait, wake_lag, wake_slice, idle_wake, idle_per_ms, idle_sleep, wake_cv, cores, threads,
         corun, free_cores) = self._sched_consts
        if corun and b > 0.0:  # model.corun_ms: co-runners on the cores the app leaves lengthen its service
            busy = b / free_cores
            lat = lat * (1.0 + corun * (busy if busy < 1.0 else 1.0))
        runnable = b + threads
        over = runnable / cores - 1.0
        if over < 0.0:
            over = 0.0
        period = 1000.0 / (rate if rate > 1e-9 else 1e-9)
        if over > 0.0:  # a sleeper's wait for a core at wake-up (mean ``wake``, 0.9 tick): how likely, how long
            q = wake_wait * over
            q = (q if q < 1.0 else 1.0) * (1.0 - math.exp(-lat / wake_lag))
            superseded = q * math.exp(-period / wake)
        else:
            q = superseded = 0.0
        # the demand of the requests served over the share (1 / (1 + over))
        theta = (lat / period * (1.0 - superseded) * (1.0 + over) - SATURATION_ONSET) / _ONSET_SPAN
        theta = 0.0 if theta < 0.0 else 1.0 if theta > 1.0 else theta
        if theta > 0.0:  # saturated (in part): back to back, preempted while running, waiting for the one before
            if over > 0.0:
                extra_sat = lat * over
                p_sat = 1.0 - math.exp(-extra_sat / (tick * (over if over > 1.0 else 1.0)))
            else:
                p_sat = extra_sat = 0.0
            queue = lat + extra_sat
            queue = 0.5 * (queue if queue < period else period)
        else:
            p_sat = extra_sat = queue = 0.0
        if theta < 1.0:  # a sleeper (in part): waits at wake-up, then after its wake slice
            run = lat - wake_slice
            if run < 0.0:
                run = 0.0
            if over > 0.0:
                shares = runnable - cores
                shares = 0.0 if shares < 0.0 else 1.0 if shares > 1.0 else shares
                p_run = shares * (run / tick if run < tick else 1.0)
                extra_run = (shares * (run if run < tick else tick) * (over if over > 1.0 else 1.0)
                             + (run - tick if run > tick else 0.0) * over)
            else:
                p_run = extra_run = 0.0
            p_sleep = 1.0 - (1.0 - q) * (1.0 - p_run)
            extra_sleep = q * wake + extra_run
            asleep = period - lat
            if asleep < 0.0:
                asleep = 0.0
            idle = wake_scale * (idle_wake + idle_per_ms * lat) * (1.0 - math.exp(-asleep / idle_sleep))
        else:
            p_sleep = extra_sleep = idle = 0.0
        awake = 1.0 - theta
        p = awake * p_sleep + theta * p_sat
        extra = awake * extra_sleep + theta * extra_sat
        base = lat + awake * idle + theta * queue
        wall = lat + extra + awake * idle - awake * superseded * wake  # E[min(W, period)]
        delay = extra / p if p > 1e-12 else 0.0
        wake_frac = awake * q * wake / extra if theta < 1.0 and extra > 1e-12 else 0.0
        return p, delay, base, 1000.0 / wall, wake_cv * awake * idle, wake_frac

    def step(self, state: PhysicsState, target: int, exo: Exo, noise: Noise, dt_s: float) -> tuple[PhysicsState, Outcome]:
        """One interval: :mod:`adascale_rl.device.model` for one variant, composed with the device's
        clock, heat, battery and memory, inlined for speed (this is the environment's hot path);
        ``tests/device/test_model.py`` checks it against the batched model."""
        loaded, temp_c, level, used_j, killed = state
        freq_cap, bg, b_run, mem_avail, ambient_c, battery_pct, plugged, rate, deadline_ms = exo
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
        peak, cb, serial_cb, lat_ref, e_ref_j, accuracy, load_s = self._variant_rows[target]
        # after an OOM kill the app restarts empty: whatever it runs next loads alone
        loading = switched or killed
        if loading and not killed:
            mem = peak + self._variant_rows[loaded][0] - self.shared_mb
        else:
            mem = peak
        oom = mem > mem_avail
        cf = cb * (self.f_max_mhz / freq) + serial_cb
        lat = lat_ref * cf * noise[0]
        p, delay, base, capacity, spread, wake_frac = self._contention(lat, rate, b_run, self._wake_scale[target])
        mean_ms, stale = self._served_mean(base, p, delay, wake_frac, deadline_ms)
        served = 0.0
        if oom:
            # killed by the low-memory killer: nothing served this interval; the app restarts
            # with the variant it asked for.
            serving = _new_tuple(Serving, (0.0, 0.0, mean_ms, 0.0))
        elif rate <= 0:
            serving = _new_tuple(Serving, (1.0, 1.0, mean_ms, 0.0))
        else:  # model.serve(), inlined
            open_s = dt_s - load_s if loading else dt_s
            if open_s < 0.0:
                open_s = 0.0
            capped = rate * open_s
            if capacity * open_s < capped:
                capped = capacity * open_s
            served = capped * (1.0 - stale)  # less the stale ones (model.serve)
            issued = rate * dt_s
            # model._log_point() for both points, inlined
            log_d = math.log(deadline_ms)
            half_s2, ef, sig_corr = self._half_s2, self._ef, self._sig_corr
            base_mean = base * sig_corr  # the mean service of the requests not delayed
            rel = spread / base_mean
            s2 = math.log(1.0 + ef + rel * rel)
            z = (log_d - math.log(base) - half_s2 + 0.5 * s2) / math.sqrt(s2)
            within_lo = 0.5 * (1.0 + erf_scalar(z * _SQRT1_2))
            if p > 0.0:  # some requests delayed: their point, and the stale share of those waiting at wake-up
                wait = delay if delay > 1e-9 else 1e-9
                waits = p * wake_frac
                high = base + delay
                rel = spread / (high * sig_corr)
                s2b = math.log(1.0 + ef + rel * rel)
                zb = (log_d - math.log(high) - half_s2 + 0.5 * s2b) / math.sqrt(s2b)
                slack = deadline_ms - base_mean
                within_wait = within_lo * (1.0 - math.exp(-slack / wait)) if slack > 0.0 else 0.0
                within = ((1.0 - p) * within_lo + waits * within_wait
                          + (p - waits) * 0.5 * (1.0 + erf_scalar(zb * _SQRT1_2)))
            else:
                within = within_lo
            serving = _new_tuple(Serving, (served / issued, capped / issued * within, mean_ms, served))
        # energy: per served request e_ref x (f / f_max)^k x clock factor x noise; loading keeps one core busy
        dyn_all = self._dyn_all.get(freq)
        if dyn_all is None:
            dyn_all = self._dyn_all[freq] = self._dyn_w_max * (freq / self.f_max_mhz) ** self._freq_exponent
        energy = served * e_ref_j * (dyn_all / self._dyn_w_max) * cf * noise[0]
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
                                     temp, battery, lat)))

    def step_batch(self, state: PhysicsState, target: np.ndarray, exo: Exo, noise: Noise,
                   dt_s: float) -> tuple[PhysicsState, Outcome]:
        """:meth:`step` for a batch of independent intervals: every field of ``state``, ``exo`` and
        ``noise`` and ``target`` are arrays of one length ``B`` (``loaded``, ``thermal_level`` and
        ``target`` integer, ``killed`` and ``plugged`` boolean); returns the new state and the
        outcome with arrays in the same fields (``serving`` a :class:`Serving` of arrays).

        The per-variant part is the batched model (:func:`adascale_rl.device.model.outcome` and
        :func:`~adascale_rl.device.model.switch_mem_mb`, each environment's target variant gathered
        from the table); the device's clock, heat, battery and memory around it are written here once
        over arrays. The vector environment steps with it; ``tests/device/test_physics.py`` ties
        :meth:`step` to it on 10,000 random cases.
        """
        t = self.table
        loaded, temp_c, level, used_j, killed = state
        freq_cap, bg, b_run, mem_avail, ambient_c, battery_pct, plugged, rate, deadline_ms = exo
        ladder = self._ladder_arr
        # clock: min(trace cap, thermal limit, battery saver), snapped down to the ladder
        cap = np.minimum(freq_cap, ladder[level])
        if self.has_battery:
            battery = np.maximum(battery_pct - 100.0 * used_j / self._battery_j, 0.0)  # battery_pct_after()
            saver = ~plugged & (battery < self._saver_threshold_pct)
            cap = np.where(saver, np.minimum(cap, self._saver_cap_mhz), cap)
        i = np.searchsorted(ladder, cap + 1e-9, side="right") - 1
        np.maximum(i, 0, out=i)
        freq = ladder[i]
        dyn_all = self._dyn_ladder[i]
        # memory: a switch holds old and new; after an OOM kill the app restarts empty and loads alone
        switched = target != loaded
        loading = switched | killed
        peak = t.peak_mem_mb
        mem = model.switch_mem_mb(peak[target], peak[loaded], t.overhead_mb, killed=~switched | killed)
        oom = mem > mem_avail
        arrays = {k: v[target] for k, v in self.world_arrays.items()}
        o = model.outcome(t, arrays, freq_mhz=freq, bg_runnable=b_run, rate_hz=rate, deadline_ms=deadline_ms,
                          dt_s=dt_s, noise=noise.latency, loading=loading)
        s = o.serving
        # killed by the low-memory killer: nothing served this interval (the load's energy is spent)
        served_frac = np.where(oom, 0.0, s.served_frac)
        on_time = np.where(oom, 0.0, s.on_time_frac)
        served = np.where(oom, 0.0, s.served)
        load_j = model.load_energy_j(t, arrays["load_ms"] * 0.001, model.freq_factor(t, freq), dt_s)
        energy = np.where(oom, np.where(loading, load_j, 0.0), o.energy_j)
        busy_w = dyn_all * bg + energy / dt_s
        power = self._idle_w + np.minimum(busy_w, dyn_all)
        # first-order thermal model and the governor's hysteresis
        decay = self._decay.get(dt_s)
        if decay is None:
            decay = self._decay[dt_s] = math.exp(-dt_s / self.device.thermal_time_constant_s)
        steady = ambient_c + self._resistance * power
        temp = steady + (temp_c - steady) * decay
        level = np.where(temp > self._throttle_c, np.maximum(level - 1, 0),
                         np.where(temp < self._release_c, np.minimum(level + 1, self.top_level), level))
        if self.has_battery:
            drawn = np.where(plugged, 0.0, used_j + energy)
            battery = np.where(drawn != 0.0, np.maximum(battery_pct - 100.0 * drawn / self._battery_j, 0.0),
                               battery_pct)
        else:
            drawn = np.zeros_like(energy)
            battery = battery_pct
        serving = Serving(served_frac, on_time, s.mean_ms, served)
        return (PhysicsState(target, temp, level, drawn, oom),
                Outcome(target, freq, s.mean_ms, serving, arrays["accuracy"], energy, power, mem, switched, oom,
                        temp, battery, o.latency_ms))

    # ------------------------------------------------------------------ planning
    def interval_table(self, freq_mhz: float, exo: Exo, noise: Noise, dt_s: float, killed: bool = False):
        """Outcomes of every (loaded, target) pair for one interval at a given clock: the batched
        model (:func:`adascale_rl.device.model.outcome`) for keeping and for loading each variant,
        arranged by pair.

        Planners that hold the clock trajectory fixed (the clairvoyant oracle's dynamic
        programme) use this instead of n x n calls to :meth:`step`; ``tests/device/test_physics.py``
        checks it against :meth:`step` pair by pair. Returns a dict of arrays indexed
        ``[loaded, target]``: ``on_time_frac``, ``energy_j``, ``mem_mb``, ``oom``, ``switched``,
        ``latency_ms``. With ``killed`` the app was OOM-killed the interval before: every target loads alone.
        """
        t = self.table
        n = t.n
        kw = dict(freq_mhz=freq_mhz, bg_runnable=exo.bg_runnable, rate_hz=exo.request_rate_hz,
                  deadline_ms=exo.deadline_ms, dt_s=dt_s, noise=noise.latency)
        keep = model.outcome(t, self.world_arrays, loading=False, **kw)
        load = model.outcome(t, self.world_arrays, loading=True, **kw)
        peak = t.peak_mem_mb
        switched = ~np.eye(n, dtype=bool)
        loading = np.ones((n, n), dtype=bool) if killed else switched
        if killed:
            mem = np.broadcast_to(peak[None, :], (n, n)).copy()
        else:
            mem = np.where(switched, peak[:, None] + peak[None, :] - self.shared_mb, peak[None, :])
        oom = mem > exo.mem_avail_mb
        if exo.request_rate_hz <= 0:
            on_keep = on_load = np.ones(n)
        else:
            on_keep, on_load = keep.serving.on_time_frac, load.serving.on_time_frac
        on_time = np.where(loading, on_load[None, :], on_keep[None, :])
        on_time = np.where(oom, 0.0, on_time)
        load_j = model.load_energy_j(t, t.load_ms * 0.001, model.freq_factor(t, freq_mhz), dt_s)
        energy = np.where(loading, load.energy_j[None, :], keep.energy_j[None, :])
        energy = np.where(oom, np.where(loading, load_j[None, :], 0.0), energy)
        lat = np.broadcast_to(keep.serving.mean_ms[None, :], (n, n))
        return {"on_time_frac": on_time, "energy_j": energy, "mem_mb": mem, "oom": oom, "switched": switched,
                "latency_ms": lat}
