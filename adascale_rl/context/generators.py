"""The component models of the synthesizer, one function per part of the context.

Each component draws from its own generator, keyed by (seed, scenario, segment,
component name), so changing one component never shifts another's random
stream. All functions work on ``n`` steps of ``period`` seconds; step ``k`` covers
``[k*period, (k+1)*period)`` and CPU figures are averages over it. See
:mod:`adascale_rl.context.synth` for the overview and the public API.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from adascale_rl.context.scenarios import Dist, Scenario, Workload
from adascale_rl.context.traces import TraceDataset
from adascale_rl.device.presets import DevicePreset


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator for one component: the seed plus stable hashes of the names."""
    return np.random.default_rng([int(seed)] + [zlib.crc32(k.encode()) for k in keys])


def ar1(rng: np.random.Generator, n: int, sd: float, corr_s: float, period: float) -> np.ndarray:
    """Stationary AR(1) noise with standard deviation ``sd`` and correlation time ``corr_s``."""
    if sd <= 0:
        return np.zeros(n)
    phi = math.exp(-period / corr_s)
    e = rng.standard_normal(n) * sd * math.sqrt(1 - phi * phi)
    x = np.empty(n)
    x[0] = rng.standard_normal() * sd
    for k in range(1, n):
        x[k] = phi * x[k - 1] + e[k]
    return x


def cover(n: int, period: float, start: float, end: float) -> tuple[int, int, np.ndarray]:
    """Steps overlapped by [start, end) seconds and the overlapped fraction of each."""
    k0 = max(int(start // period), 0)
    k1 = min(int(math.ceil(end / period)), n)
    if k1 <= k0:
        return k0, k0, np.zeros(0)
    edges = np.arange(k0, k1 + 1) * period
    frac = (np.minimum(edges[1:], end) - np.maximum(edges[:-1], start)) / period
    return k0, k1, np.clip(frac, 0.0, 1.0)


def onoff(rng: np.random.Generator, horizon: float, on: Dist, off: Dist, start_on_p: float) -> list[tuple[float, float]]:
    """ON intervals (seconds) of an alternating renewal process already running at time 0."""
    t, state, first, out = 0.0, bool(rng.random() < start_on_p), True, []
    while t < horizon:
        d = float((on if state else off).sample(rng))
        if first:  # we join a process already running: the first period is a residual
            d *= float(rng.random())
            first = False
        if state:
            out.append((t, t + d))
        t += max(d, 1e-6)
        state = not state
    return out


def snap_to_ladder(mhz: float, ladder: Sequence[float]) -> float:
    """The highest operating point at or below ``mhz`` (1 % tolerance for rounded figures), else the lowest."""
    ok = [f for f in ladder if f <= mhz * 1.01]
    return float(ok[-1] if ok else ladder[0])


# --------------------------------------------------------------------------- components

def os_cpu(rng, cpu: dict, n: int, period: float) -> np.ndarray:
    """OS services: a per-trace mean, AR(1) noise, and Poisson spikes of log-normal length."""
    base = float(cpu["base"].sample(rng))
    bg = base + ar1(rng, n, float(cpu["noise_sd"].sample(rng)), float(cpu["noise_corr_s"].sample(rng)), period)
    if "spikes_per_h" in cpu:
        rate = float(cpu["spikes_per_h"].sample(rng)) / 3600.0
        t = float(rng.exponential(1 / rate)) if rate > 0 else math.inf
        while t < n * period:
            d = float(cpu["spike_s"].sample(rng))
            k0, k1, frac = cover(n, period, t, t + d)
            bg[k0:k1] += float(cpu["spike_cpu"].sample(rng)) * frac
            t += d + float(rng.exponential(1 / rate))
    return bg


def os_memory(rng, mem: dict, total: float, n: int, period: float) -> tuple[np.ndarray, float]:
    """(memory the OS holds per step with page-cache noise, the floor available memory keeps)."""
    os_mb = float(mem["os_frac"].sample(rng)) * total
    used = os_mb + ar1(rng, n, float(mem["noise_mb_sd"].sample(rng)), float(mem["noise_corr_s"].sample(rng)), period)
    return used, float(mem["min_avail_mb"].sample(rng))


def app_load(rng, app: dict, total: float, n: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    """(CPU share, memory MB) of one background app switching on and off."""
    cpu, mem = np.zeros(n), np.zeros(n)
    for start, end in onoff(rng, n * period, app["on_s"], app["off_s"], float(app["start_on_p"].sample(rng))):
        level = float(app["cpu"].sample(rng))
        app_mem = float(app["mem_frac"].sample(rng)) * total
        k0, k1, frac = cover(n, period, start, end)
        if k1 <= k0:
            continue
        jitter = float(app["cpu_jitter"].sample(rng))
        noise = np.exp(jitter * rng.standard_normal(k1 - k0) - jitter * jitter / 2)
        cpu[k0:k1] += level * frac * noise
        mem[k0:k1] += app_mem * (frac >= 0.5)
    return cpu, mem


def memory_pressure(rng, p: dict, avail: np.ndarray, n: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    """(memory grabbed per step, CPU of the grabbing apps): ramp to a floor, hold, release."""
    rate = float(p["per_h"].sample(rng)) / 3600.0
    t = float(p["first_after_s"].sample(rng))
    grab, cpu = np.zeros(n), np.zeros(n)
    ts = (np.arange(n) + 1) * period  # sample instants (end of each interval)
    while t < n * period and rate > 0:
        ramp, hold, rel = (max(float(p[k].sample(rng)), period) for k in ("ramp_s", "hold_s", "release_s"))
        target = float(p["floor_mb"].sample(rng))
        prof = np.clip(np.minimum((ts - t) / ramp, 1.0 - (ts - t - ramp - hold) / rel), 0.0, 1.0)
        prof[ts < t] = 0.0
        grab = np.maximum(grab, prof * np.maximum(avail - target, 0.0))
        c = float(p["cpu"].sample(rng))
        k0, k1, frac = cover(n, period, t, t + ramp)
        cpu[k0:k1] += c * frac
        k0, k1, frac = cover(n, period, t + ramp, t + ramp + hold)
        cpu[k0:k1] += 0.5 * c * frac
        t += ramp + hold + rel + float(rng.exponential(1 / rate))
    return grab, cpu


def ambient(rng, sc: Scenario, n: int, period: float) -> np.ndarray:
    """Ambient temperature: a drifting level, or legs approached first-order, within the scenario's bounds."""
    amb_s = sc.sections["ambient"]
    lo, hi = float(amb_s["min_c"].sample(rng)), float(amb_s["max_c"].sample(rng))
    a = float(amb_s["start_c"].sample(rng))
    drift = ar1(rng, n, float(amb_s["drift_sd_c"].sample(rng)), float(amb_s["drift_corr_s"].sample(rng)), period)
    if sc.legs:
        amb = np.empty(n)
        i = int(rng.integers(len(sc.leg_order)))
        leg_end, k = 0.0, 0
        while k < n:
            leg = sc.legs[sc.leg_order[i % len(sc.leg_order)]]
            target = float(leg["target_c"].sample(rng))
            alpha = 1 - math.exp(-period / float(leg["tau_s"].sample(rng)))
            leg_end += float(leg["dwell_s"].sample(rng)) * (float(rng.random()) if k == 0 else 1.0)
            while k < n and (k + 1) * period <= leg_end:
                a += (target - a) * alpha
                amb[k] = a
                k += 1
            i += 1
        amb = amb + drift
    else:
        amb = a + drift
    return np.clip(amb, max(lo, -40.0), min(hi, 85.0))


def clock_cap(rng, c: dict | None, dev: DevicePreset, amb: np.ndarray, n: int, period: float) -> np.ndarray:
    """Exogenous cap: thermal-engine levels stepping down with ambient, and power-save episodes."""
    cap = np.full(n, dev.f_max_mhz)
    if c is None:
        return cap
    levels = [snap_to_ladder(f * dev.f_max_mhz, dev.dvfs_mhz) for f in c["levels"]]
    onset, step = float(c["thermal_onset_c"].sample(rng)), float(c["c_per_level"].sample(rng))
    level, next_eval = 0, 0.0
    for k in range(n):
        if k * period >= next_eval:
            over = amb[k] - onset
            level = 0 if over < 0 else min(len(levels) - 1, 1 + int(over // step))
            next_eval = k * period + float(c["hold_s"].sample(rng))
        cap[k] = levels[level]
    rate = float(c["saver_per_h"].sample(rng)) / 3600.0
    saver = snap_to_ladder(float(c["saver_level"].sample(rng)) * dev.f_max_mhz, dev.dvfs_mhz)
    t = float(rng.exponential(1 / rate)) if rate > 0 else math.inf
    while t < n * period:
        d = float(c["saver_s"].sample(rng))
        k0, k1, frac = cover(n, period, t, t + d)
        on = frac >= 0.5
        cap[k0:k1][on] = np.minimum(cap[k0:k1][on], saver)
        t += d + float(rng.exponential(1 / rate))
    return cap


def battery(rng, b: dict, dev: DevicePreset, bg: np.ndarray, cap: np.ndarray, period: float,
            start_pct: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(charge %, plugged flag): drained by the rest of the device, charged when plugged.

    The background apps' CPU power is ``bg * dyn_w_max * (cap / f_max) ** freq_exponent``;
    the controller app's own energy is the simulator's to subtract.
    """
    n = len(bg)
    if not dev.has_battery:
        return np.full(n, 100.0), np.ones(n)
    plugged = float(rng.random() < float(b["plugged_p"].sample(rng)))
    if start_pct is None:
        if "start_pct" in b:
            start_pct = float(b["start_pct"].sample(rng))
        else:
            start_pct = float(dev.saver_threshold_pct) + float(b["start_above_saver_pct"].sample(rng))
    other_w = float(b["other_w"].sample(rng))
    charge_w = float(b["charge_w"].sample(rng))
    power = other_w + bg * dev.dyn_w_max * (cap / dev.f_max_mhz) ** dev.freq_exponent
    net_w = (charge_w if plugged else 0.0) - power
    pct = np.clip(min(max(start_pct, 0.0), 100.0) + np.cumsum(net_w * period / 3600.0 / dev.battery_wh * 100.0),
                  0.0, 100.0)
    return pct, np.full(n, plugged)


def app_modes(rng, sc: Scenario, wl: Workload, n: int, period: float,
              mode: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(request rate, deadline, final mode): the default mode, or switching with dwell times."""
    mode = mode if mode in wl.modes else wl.default_mode
    if not sc.switch_modes:
        m = wl.modes[mode]
        return np.full(n, float(m.request_rate_hz)), np.full(n, float(m.deadline_ms)), mode
    scale = float(sc.sections["app"]["dwell_scale"].sample(rng)) if "app" in sc.sections else 1.0
    return mode_sequence(rng, wl, n, period, mode, scale)


def mode_sequence(rng, wl: Workload, n: int, period: float, mode: str | None = None,
                  dwell_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, str]:
    """(request rate, deadline, final mode) of an app switching between ``wl``'s modes.

    Starts in ``mode`` (default: the workload's default mode) part-way through a dwell,
    stays in each mode for a dwell drawn from its ``dwell_s`` (times ``dwell_scale``), then
    moves to another mode chosen uniformly.
    """
    mode = mode if mode in wl.modes else wl.default_mode
    rate_hz, deadline = np.empty(n), np.empty(n)
    others = sorted(wl.modes)
    k, first = 0, True
    while k < n:
        m = wl.modes[mode]
        d = float(m.dwell_s.sample(rng)) * dwell_scale * (float(rng.random()) if first else 1.0)
        first = False
        k1 = min(n, k + max(1, int(round(d / period))))
        rate_hz[k:k1], deadline[k:k1] = m.request_rate_hz, m.deadline_ms
        k = k1
        choices = [x for x in others if x != mode]
        if choices:
            mode = choices[int(rng.integers(len(choices)))]
    return rate_hz, deadline, mode


def segment(dev: DevicePreset, sc: Scenario, wl: Workload, seed: int, n: int, period: float, seg: str,
            battery0: float | None, mode0: str | None) -> tuple[dict[str, np.ndarray], float | None, str]:
    """One scenario for ``n`` steps: ({column: values} without t_s, battery at the end, app mode at the end)."""
    total = dev.mem_total_mb
    key = (sc.name, seg)
    bg = os_cpu(rng_for(seed, *key, "cpu"), sc.sections["cpu"], n, period)
    used, floor_mb = os_memory(rng_for(seed, *key, "memory"), sc.sections["memory"], total, n, period)
    for app_name, app in sc.apps.items():
        cpu, mem = app_load(rng_for(seed, *key, "app", app_name), app, total, n, period)
        bg += cpu
        used += mem
    avail = total - used
    if "pressure" in sc.sections:
        grab, cpu = memory_pressure(rng_for(seed, *key, "pressure"), sc.sections["pressure"], avail, n, period)
        avail = avail - grab
        bg += cpu
        floor_mb = min(floor_mb, float(sc.sections["pressure"]["floor_mb"].low))
    avail = np.clip(avail, min(floor_mb, total), total)
    # bg is the background's CPU demand in shares of all cores, before clipping: above 1 the
    # cores are oversubscribed. In cores it is the run queue, and the clipped share is the
    # utilisation: bg_runnable = max(demand, 0) x cores, bg_cpu_util = min(1, bg_runnable / cores).
    runnable = np.maximum(bg, 0.0) * dev.cores
    bg = np.clip(bg, 0.0, 1.0)
    amb = ambient(rng_for(seed, *key, "ambient"), sc, n, period)
    cap = clock_cap(rng_for(seed, *key, "clock"), sc.sections.get("clock"), dev, amb, n, period)
    pct, plug = battery(rng_for(seed, *key, "battery"), sc.sections["battery"], dev, bg, cap, period, battery0)
    rate_hz, deadline, mode = app_modes(rng_for(seed, *key, "workload"), sc, wl, n, period, mode0)
    out = {"bg_cpu_util": bg, "bg_runnable": runnable, "mem_avail_mb": avail, "freq_cap_mhz": cap,
           "ambient_temp_c": amb, "battery_pct": pct, "plugged": plug, "request_rate_hz": rate_hz,
           "deadline_ms": deadline}
    return out, (float(pct[-1]) if dev.has_battery else None), mode


APP_COLUMNS = ("request_rate_hz", "deadline_ms")


def with_app_modes(ds, wl: Workload):
    """``ds`` with the app's modes added to every trace that has no app columns.

    A host monitor cannot see the app (``record`` leaves ``request_rate_hz`` and
    ``deadline_ms`` out), so a recorded trace alone replays one fixed default mode.
    Here each such trace gets ``wl``'s mode sequence (:func:`mode_sequence`), drawn from a
    generator keyed by the trace's file stem and the workload: the same trace gets the same modes in
    every run and every split view, however it is given (in its dataset, in a folder of CSVs
    or as the CSV alone). Traces that carry app columns, and the
    files on disk, are left as they are.
    """
    splits = {}
    for split, traces in ds.splits.items():
        out = []
        for t in traces:
            if any(c in t.data for c in APP_COLUMNS) or len(t) == 0:
                out.append(t)
                continue
            # the file's stem: a dataset names its traces by their path inside the dataset
            rng = rng_for(0, Path(t.name).stem, "app-modes", wl.name)
            rate, deadline, _ = mode_sequence(rng, wl, len(t), float(t.period_s or ds.period_s))
            out.append(dataclasses.replace(t, data={**t.data, "request_rate_hz": rate, "deadline_ms": deadline}))
        splits[split] = out
    return TraceDataset(ds.path, ds.meta, splits)
