"""Synthesize resource-context traces from a device preset, a scenario and a seed.

The generator models what happens *around* the controller's app -- never the
app's own effect, which the simulator adds (its CPU time, its heat and thermal
throttling, its battery drain, its memory):

* ``bg_cpu_util``: OS services (mean + AR(1) noise + short spikes), plus background
  apps that come and go as on/off processes with heavy-tailed on and off
  durations (several superposed), plus the CPU of apps that grab memory. Each
  step is the average over the sampling interval, clipped to [0, 1].
* ``mem_avail_mb``: total minus what the OS holds, minus running apps' memory,
  minus memory-pressure episodes (another app ramps up until available memory
  reaches a floor, holds, lets go), plus AR(1) page-cache noise; within
  [0, mem_total].
* ``ambient_temp_c``: a level with slow drift, or a sequence of legs (hot parked
  car, car with air conditioning, outdoors, indoors) approached first-order.
* ``freq_cap_mhz``: the exogenous cap: a thermal engine that steps the cap down
  as ambient rises above an onset (re-evaluated after hold times), and power-save
  episodes; always a clock on the device's DVFS ladder.
* ``battery_pct`` / ``plugged``: for devices with a battery, the charge as drained
  by the rest of the device (screen, radio, the background apps' CPU power), or
  charged when plugged; the simulator subtracts the app's own energy and applies
  the battery-saver cap. Devices without a battery read 100 % and plugged.
* ``request_rate_hz`` / ``deadline_ms``: the app's mode from the workload file;
  constant in the default mode, or switching between modes with dwell times in
  scenarios that say ``switch_modes: true``.

Every draw comes from ``numpy.random.default_rng`` seeded with the seed and the
names of the scenario, segment and component, so the same arguments give the
same bytes and adding a component does not shift the others' streams.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from adascale_rl import paths
from adascale_rl.context import schema
from adascale_rl.context.scenarios import (
    Recipe, Scenario, ScenarioError, Workload, load_recipe, load_scenario, load_workload, names,
)
from adascale_rl.context.traces import (
    TraceError, load_dataset, make_meta, save_dataset,
)
from adascale_rl.device.presets import DevicePreset, PresetError, device_names, load_device

COLUMNS = list(schema.NAMES)
#: decimals written per column (finer than any sensor resolves; keeps files small)
DECIMALS = {"t_s": 6, "bg_cpu_util": 4, "mem_avail_mb": 1, "ambient_temp_c": 2, "battery_pct": 4}


class SynthError(ValueError):
    """A synthesis request that cannot be met; one sentence naming the value at fault."""


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([int(seed)] + [zlib.crc32(k.encode()) for k in keys])


def _ar1(rng: np.random.Generator, n: int, sd: float, corr_s: float, period: float) -> np.ndarray:
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


def _cover(n: int, period: float, start: float, end: float) -> tuple[int, int, np.ndarray]:
    """Steps overlapped by [start, end) seconds and the overlapped fraction of each."""
    k0 = max(int(start // period), 0)
    k1 = min(int(math.ceil(end / period)), n)
    if k1 <= k0:
        return k0, k0, np.zeros(0)
    edges = np.arange(k0, k1 + 1) * period
    frac = (np.minimum(edges[1:], end) - np.maximum(edges[:-1], start)) / period
    return k0, k1, np.clip(frac, 0.0, 1.0)


def _onoff(rng, horizon: float, on, off, start_on_p: float) -> list[tuple[float, float]]:
    """ON intervals (seconds) of an alternating renewal process started in equilibrium-ish."""
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


# --------------------------------------------------------------------------- one segment

def _segment(dev: DevicePreset, sc: Scenario, wl: Workload, seed: int, n: int, period: float, seg: str,
             battery0: float | None, mode0: str | None) -> tuple[dict[str, np.ndarray], float | None, str]:
    total = dev.mem_total_mb
    horizon = n * period
    key = (sc.name, seg)

    # ---- CPU of the OS and its services
    r = _rng(seed, *key, "cpu")
    cpu = sc.sections["cpu"]
    base = float(cpu["base"].sample(r))
    bg = base + _ar1(r, n, float(cpu["noise_sd"].sample(r)), float(cpu["noise_corr_s"].sample(r)), period)
    if "spikes_per_h" in cpu:
        rate = float(cpu["spikes_per_h"].sample(r)) / 3600.0
        t = float(r.exponential(1 / rate)) if rate > 0 else math.inf
        while t < horizon:
            d = float(cpu["spike_s"].sample(r))
            k0, k1, frac = _cover(n, period, t, t + d)
            bg[k0:k1] += float(cpu["spike_cpu"].sample(r)) * frac
            t += d + float(r.exponential(1 / rate))

    # ---- memory held by the OS, page-cache noise
    r = _rng(seed, *key, "memory")
    mem = sc.sections["memory"]
    os_mb = float(mem["os_frac"].sample(r)) * total
    used = os_mb + _ar1(r, n, float(mem["noise_mb_sd"].sample(r)), float(mem["noise_corr_s"].sample(r)), period)
    floor_mb = float(mem["min_avail_mb"].sample(r))

    # ---- background apps: superposed on/off processes
    for app_name, app in sc.apps.items():
        r = _rng(seed, *key, "app", app_name)
        for start, end in _onoff(r, horizon, app["on_s"], app["off_s"], float(app["start_on_p"].sample(r))):
            level = float(app["cpu"].sample(r))
            app_mem = float(app["mem_frac"].sample(r)) * total
            k0, k1, frac = _cover(n, period, start, end)
            if k1 <= k0:
                continue
            jitter = float(app["cpu_jitter"].sample(r))
            noise = np.exp(jitter * r.standard_normal(k1 - k0) - jitter * jitter / 2)
            bg[k0:k1] += level * frac * noise
            used[k0:k1] += app_mem * (frac >= 0.5)

    # ---- memory-pressure episodes: another app grows until available memory reaches a floor
    avail = total - used
    if "pressure" in sc.sections:
        r = _rng(seed, *key, "pressure")
        p = sc.sections["pressure"]
        rate = float(p["per_h"].sample(r)) / 3600.0
        t = float(p["first_after_s"].sample(r))
        grab = np.zeros(n)
        ts = (np.arange(n) + 1) * period  # sample instants (end of each interval)
        while t < horizon and rate > 0:
            ramp, hold, rel = (max(float(p[k].sample(r)), period) for k in ("ramp_s", "hold_s", "release_s"))
            target = float(p["floor_mb"].sample(r))
            prof = np.clip(np.minimum((ts - t) / ramp, 1.0 - (ts - t - ramp - hold) / rel), 0.0, 1.0)
            prof[ts < t] = 0.0
            grab = np.maximum(grab, prof * np.maximum(avail - target, 0.0))
            c = float(p["cpu"].sample(r))
            k0, k1, frac = _cover(n, period, t, t + ramp)
            bg[k0:k1] += c * frac
            k0, k1, frac = _cover(n, period, t + ramp, t + ramp + hold)
            bg[k0:k1] += 0.5 * c * frac
            t += ramp + hold + rel + float(r.exponential(1 / rate))
        avail = avail - grab
        floor_mb = min(floor_mb, float(p["floor_mb"].low))
    avail = np.clip(avail, min(floor_mb, total), total)
    bg = np.clip(bg, 0.0, 1.0)

    # ---- ambient temperature
    r = _rng(seed, *key, "ambient")
    amb_s = sc.sections["ambient"]
    lo, hi = float(amb_s["min_c"].sample(r)), float(amb_s["max_c"].sample(r))
    amb = np.empty(n)
    a = float(amb_s["start_c"].sample(r))
    drift = _ar1(r, n, float(amb_s["drift_sd_c"].sample(r)), float(amb_s["drift_corr_s"].sample(r)), period)
    if sc.legs:
        i = int(r.integers(len(sc.leg_order)))
        leg_end, k = 0.0, 0
        while k < n:
            leg = sc.legs[sc.leg_order[i % len(sc.leg_order)]]
            target = float(leg["target_c"].sample(r))
            alpha = 1 - math.exp(-period / float(leg["tau_s"].sample(r)))
            leg_end += float(leg["dwell_s"].sample(r)) * (float(r.random()) if k == 0 else 1.0)
            while k < n and (k + 1) * period <= leg_end:
                a += (target - a) * alpha
                amb[k] = a
                k += 1
            i += 1
        amb = amb + drift
    else:
        amb = a + drift
    amb = np.clip(amb, max(lo, -40.0), min(hi, 85.0))

    # ---- exogenous clock cap
    r = _rng(seed, *key, "clock")
    cap = np.full(n, dev.f_max_mhz)
    if "clock" in sc.sections:
        c = sc.sections["clock"]
        levels = [snap_to_ladder(f * dev.f_max_mhz, dev.dvfs_mhz) for f in c["levels"]]
        onset, step = float(c["thermal_onset_c"].sample(r)), float(c["c_per_level"].sample(r))
        level, next_eval = 0, 0.0
        for k in range(n):
            if k * period >= next_eval:
                over = amb[k] - onset
                level = 0 if over < 0 else min(len(levels) - 1, 1 + int(over // step))
                next_eval = k * period + float(c["hold_s"].sample(r))
            cap[k] = levels[level]
        rate = float(c["saver_per_h"].sample(r)) / 3600.0
        saver = snap_to_ladder(float(c["saver_level"].sample(r)) * dev.f_max_mhz, dev.dvfs_mhz)
        t = float(r.exponential(1 / rate)) if rate > 0 else math.inf
        while t < horizon:
            d = float(c["saver_s"].sample(r))
            k0, k1, frac = _cover(n, period, t, t + d)
            on = frac >= 0.5
            cap[k0:k1][on] = np.minimum(cap[k0:k1][on], saver)
            t += d + float(r.exponential(1 / rate))

    # ---- battery (drained by the rest of the device, not by the controller's app)
    r = _rng(seed, *key, "battery")
    if dev.has_battery:
        b = sc.sections["battery"]
        plugged = float(r.random() < float(b["plugged_p"].sample(r)))
        if battery0 is None:
            if "start_pct" in b:
                battery0 = float(b["start_pct"].sample(r))
            else:
                battery0 = float(dev.saver_threshold_pct) + float(b["start_above_saver_pct"].sample(r))
        other_w = float(b["other_w"].sample(r))
        charge_w = float(b["charge_w"].sample(r))
        power = other_w + bg * dev.dyn_w_max * (cap / dev.f_max_mhz) ** dev.freq_exponent
        net_w = (charge_w if plugged else 0.0) - power
        pct = np.clip(min(max(battery0, 0.0), 100.0) + np.cumsum(net_w * period / 3600.0 / dev.battery_wh * 100.0),
                      0.0, 100.0)
        battery = pct
        plug = np.full(n, plugged)
        battery_end = float(pct[-1])
    else:
        battery, plug, battery_end = np.full(n, 100.0), np.ones(n), None

    # ---- the app's mode: request rate and deadline
    r = _rng(seed, *key, "workload")
    mode = mode0 if mode0 in wl.modes else wl.default_mode
    rate_hz, deadline = np.empty(n), np.empty(n)
    if sc.switch_modes:
        scale = float(sc.sections.get("app", {}).get("dwell_scale").sample(r)) if "app" in sc.sections else 1.0
        others = sorted(wl.modes)
        k = 0
        first = True
        while k < n:
            m = wl.modes[mode]
            d = float(m.dwell_s.sample(r)) * scale * (float(r.random()) if first else 1.0)
            first = False
            k1 = min(n, k + max(1, int(round(d / period))))
            rate_hz[k:k1], deadline[k:k1] = m.request_rate_hz, m.deadline_ms
            k = k1
            choices = [x for x in others if x != mode]
            if choices:
                mode = choices[int(r.integers(len(choices)))]
    else:
        m = wl.modes[mode]
        rate_hz[:], deadline[:] = m.request_rate_hz, m.deadline_ms

    out = {"bg_cpu_util": bg, "mem_avail_mb": avail, "freq_cap_mhz": cap, "ambient_temp_c": amb,
           "battery_pct": battery, "plugged": plug, "request_rate_hz": rate_hz, "deadline_ms": deadline}
    return out, battery_end, mode


def _resolve(device, workload) -> tuple[DevicePreset, Workload]:
    dev = device if isinstance(device, DevicePreset) else load_device(str(device))
    wl = workload if isinstance(workload, Workload) else load_workload(workload or f"{dev.name}-vision")
    if wl.device != dev.name:
        raise SynthError(f"workload {wl.name!r} is written for device {wl.device!r}, not {dev.name!r}")
    return dev, wl


def synthesize_sequence(device: str | DevicePreset, segments: Sequence[tuple[str | Scenario, float]], seed: int,
                        period_s: float = 1.0, workload: str | Workload | None = None,
                        overrides: dict | None = None, override_origin: str = "recipe") -> dict[str, np.ndarray]:
    """Scenarios one after another (``[(scenario, duration_s), ...]``) as one trace.

    The battery charge and the app's mode carry over from one segment to the
    next; everything else starts afresh (walking out of an office into the heat).
    """
    dev, wl = _resolve(device, workload)
    if not (isinstance(period_s, (int, float)) and math.isfinite(period_s) and period_s > 0):
        raise SynthError(f"period must be a positive number of seconds, not {period_s!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed must be an integer >= 0, not {seed!r}")
    parts, battery, mode = [], None, None
    for i, (scen, dur) in enumerate(segments):
        sc = scen if isinstance(scen, Scenario) else load_scenario(scen, overrides, override_origin)
        if sc.needs_battery and not dev.has_battery:
            raise SynthError(f"scenario {sc.name!r} needs a device with a battery; {dev.name} has none")
        n = int(round(dur / period_s))
        if not (math.isfinite(dur) and n >= 1):
            raise SynthError(f"duration {dur!r} s is shorter than one period ({period_s:g} s)")
        seg, battery, mode = _segment(dev, sc, wl, int(seed), n, float(period_s), str(i), battery, mode)
        parts.append(seg)
    if not parts:
        raise SynthError("no scenario given")
    data = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    n = len(data["bg_cpu_util"])
    data["t_s"] = np.round(np.arange(n) * float(period_s), DECIMALS["t_s"])
    for c, d in DECIMALS.items():
        data[c] = np.round(data[c], d)
    data["mem_avail_mb"] = np.clip(data["mem_avail_mb"], 0.0, dev.mem_total_mb)
    data["bg_cpu_util"] = np.clip(data["bg_cpu_util"], 0.0, 1.0)
    return {c: data[c] for c in COLUMNS}


def synthesize(device: str | DevicePreset, scenario: str | Scenario, seed: int, duration_s: float,
               period_s: float = 1.0, workload: str | Workload | None = None) -> dict[str, np.ndarray]:
    """One trace: ``{column: values}`` for every schema column, ``duration_s / period_s`` rows."""
    return synthesize_sequence(device, [(scenario, duration_s)], seed, period_s, workload)


# --------------------------------------------------------------------------- datasets

def _rel(p: Path) -> str:
    root = paths.data_root()
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.name


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _inputs(dev: DevicePreset, wl: Workload, scenario_names: set[str], extra: Sequence[Path] = ()) -> dict[str, str]:
    files = [dev.path, wl.path, *(load_scenario(s).path for s in sorted(scenario_names)), *extra]
    return {_rel(p): _digest(p) for p in files if p is not None}


def build_recipe(recipe: str | os.PathLike | Recipe, out: str | os.PathLike, *, progress: bool = True,
                 overwrite: bool = False) -> Path:
    """Build the dataset a recipe describes into ``out`` (same recipe and code, same bytes)."""
    rc = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    dev, wl = _resolve(rc.device, rc.workload)
    origin = _rel(rc.path) if rc.path else rc.name
    train_keys = {(tuple(f.segments), f.seed) for f in rc.files if f.split == "train"}
    train_seeds = {f.seed for f in rc.files if f.split == "train"}
    for f in rc.files:
        if f.split == "test" and f.seed in train_seeds:
            raise SynthError(f"{origin}: test file {f.name} uses seed {f.seed}, which train uses too")
        if f.split == "test" and (tuple(f.segments), f.seed) in train_keys:
            raise SynthError(f"{origin}: test file {f.name} repeats a train file")
    splits: dict[str, dict[str, dict]] = {"train": {}, "test": {}}
    files_meta = {}
    it = rc.files
    if progress:
        from tqdm import tqdm
        it = tqdm(rc.files, desc=f"synth {rc.name}-v{rc.version}", unit="trace", file=sys.stderr)
    for f in it:
        data = synthesize_sequence(dev, f.segments, f.seed, rc.period_s, wl, f.overrides, origin)
        splits[f.split][f.name] = data
        entry = {"scenario": "+".join(s for s, _ in f.segments), "seed": f.seed,
                 "duration_s": float(sum(d for _, d in f.segments))}
        if len(f.segments) > 1:
            entry["segments"] = [[s, d] for s, d in f.segments]
        if f.overrides:
            entry["overrides"] = f.overrides
        files_meta[f"{f.split}/{f.name}.csv"] = entry
    scen = {s for f in rc.files for s, _ in f.segments}
    meta = make_meta(name=rc.name, version=rc.version, device=dev.name, device_mem_total_mb=dev.mem_total_mb,
                     period_s=rc.period_s, source="simulated", how_made=_how_made(rc, origin, dev, wl),
                     licence=rc.licence, columns=COLUMNS, recipe=origin,
                     generator="adascale_rl.context.synth", workload=wl.name,
                     inputs=_inputs(dev, wl, scen, [rc.path] if rc.path else []), files=files_meta)
    root = Path(out)
    if root.exists() and not overwrite:
        try:
            old = load_dataset(root).meta
        except TraceError as exc:
            raise SynthError(f"{root} exists and is not a valid dataset ({exc.reason}); choose another --out") from None
        if old.get("source") != "simulated" or old.get("name") != rc.name:
            raise SynthError(f"{root} holds dataset {old.get('name')!r}, not one built from {origin}; "
                             f"choose another --out")
    return save_dataset(root, {k: v for k, v in meta.items()}, {s: v for s, v in splits.items() if v}, overwrite=True)


def _how_made(rc: Recipe, origin: str, dev: DevicePreset, wl: Workload) -> str:
    def summarise(split):
        groups: dict[str, list[int]] = {}
        extra = []
        for f in rc.files:
            if f.split != split:
                continue
            label = " then ".join(f"{s} {d:g} s" for s, d in f.segments)
            if f.overrides:
                extra.append(f"{f.name} ({label}, overrides {f.overrides})")
            else:
                groups.setdefault(label, []).append(f.seed)
        parts = [f"{label} seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}"
                 for label, seeds in groups.items()]
        return "; ".join(parts + extra)
    train_sc = {tuple(s for s, _ in f.segments) for f in rc.files if f.split == "train"}
    mixes = [f.name for f in rc.files
             if f.split == "test" and (len(f.segments) > 1 or f.overrides
                                       or tuple(s for s, _ in f.segments) not in train_sc)]
    return (f"Simulated by `adascale-rl synth --recipe {origin}` (adascale_rl.context.synth): device preset "
            f"{dev.name} (envs/devices/{dev.name}.yaml), app workload {wl.name} (envs/workloads/{wl.name}.yaml), "
            f"scenario files envs/scenarios/*.yaml whose numbers name their sources (shared/CALIBRATION.md or "
            f"'derived'); period {rc.period_s:g} s; numpy Generator seeded from (seed, scenario, segment, "
            f"component). The traces hold the exogenous context only: the controller's own CPU time, heat, "
            f"thermal throttling, battery drain and memory are added by the simulator. {rc.description} "
            f"Train: {summarise('train')}. Test (seeds not used in train; mixes and parameter draws not in train: "
            f"{', '.join(mixes) or 'none'}): {summarise('test')}.")


def add_trace(out: str | os.PathLike, device: str, scenario: str, seed: int, duration_s: float, period_s: float,
              split: str = "train", workload: str | None = None, name: str | None = None) -> Path:
    """Create dataset ``out`` with one synthesized trace, or add a trace to an existing simulated dataset."""
    dev, wl = _resolve(device, workload)
    data = synthesize(dev, scenario, seed, duration_s, period_s, wl)
    stem = name or f"{scenario}-s{seed}"
    rel = f"{split}/{stem}.csv"
    cmd = (f"`adascale-rl synth --device {dev.name} --scenario {scenario} --seed {seed} --duration {duration_s:g} "
           f"--period {period_s:g} --split {split} --workload {wl.name}`")
    root = Path(out)
    entry = {"scenario": scenario, "seed": seed, "duration_s": float(duration_s)}
    if root.exists():
        ds = load_dataset(root)
        meta = dict(ds.meta)
        if meta["source"] != "simulated" or meta["device"] != dev.name:
            raise SynthError(f"{root} holds a {meta['source']} dataset for {meta['device']}; "
                             f"add to a simulated {dev.name} dataset or choose another --out")
        if not math.isclose(float(meta["period_s"]), period_s):
            raise SynthError(f"{root} has period {meta['period_s']:g} s, not {period_s:g} s")
        if [c["name"] for c in meta["columns"]] != COLUMNS:
            raise SynthError(f"{root} has columns {','.join(c['name'] for c in meta['columns'])}; "
                             f"synthesized traces carry all of {','.join(COLUMNS)}")
        if rel in {f"{s}/{Path(t.name).name}" for s, ts in ds.splits.items() for t in ts}:
            raise SynthError(f"{root / rel} already exists; choose another seed or split")
        splits = {s: {Path(t.name).stem: t.data for t in ts} for s, ts in ds.splits.items() if ts}
        splits.setdefault(split, {})[stem] = data
        meta["files"] = {**meta.get("files", {}), rel: entry}
        meta["how_made"] = meta["how_made"] + f" Added {rel} with {cmd}."
        return save_dataset(root, meta, splits, overwrite=True)
    name_, version = root.name, 1
    if "-v" in root.name and root.name.rsplit("-v", 1)[1].isdigit() and int(root.name.rsplit("-v", 1)[1]) >= 1:
        name_, version = root.name.rsplit("-v", 1)[0], int(root.name.rsplit("-v", 1)[1])
    meta = make_meta(name=name_, version=version, device=dev.name, device_mem_total_mb=dev.mem_total_mb,
                     period_s=period_s, source="simulated",
                     how_made=f"Simulated by adascale_rl.context.synth: {rel} with {cmd}; the traces hold the "
                              f"exogenous context only (the simulator adds the controller's own effects).",
                     columns=COLUMNS, generator="adascale_rl.context.synth", workload=wl.name,
                     inputs=_inputs(dev, wl, {scenario}), files={rel: entry})
    return save_dataset(root, meta, {split: {stem: data}})


# --------------------------------------------------------------------------- CLI

def list_text() -> str:
    lines = ["devices:   " + ", ".join(device_names())]
    lines.append("scenarios:")
    for s in names("scenarios"):
        try:
            sc = load_scenario(s)
            desc = sc.description.split(". ")[0].rstrip(".")
            lines.append(f"  {s:<16} {desc}" + (" (devices with a battery)" if sc.needs_battery else ""))
        except ScenarioError as exc:
            lines.append(f"  {s:<16} INVALID: {exc}")
    lines.append("workloads: " + ", ".join(names("workloads")))
    lines.append("recipes:   " + ", ".join(str(Path("envs/datasets") / f"{r}.yaml") for r in names("datasets")))
    return "\n".join(lines)


def synth_command(args) -> int:
    """``adascale-rl synth``: one trace (``--device --scenario --seed``) or a recipe (``--recipe``)."""
    try:
        if args.list:
            print(list_text())
            return 0
        if not args.out:
            raise SynthError("--out is required (the dataset folder to create or add to)")
        if args.recipe:
            root = build_recipe(args.recipe, args.out, progress=not args.no_progress)
        else:
            missing = [f"--{k}" for k in ("device", "scenario") if not getattr(args, k)]
            if missing:
                raise SynthError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                                 f"(or give --recipe)")
            if not (math.isfinite(args.duration) and args.duration > 0):
                raise SynthError(f"--duration must be a positive number of seconds, not {args.duration!r}")
            root = add_trace(args.out, args.device, args.scenario, args.seed, args.duration, args.period,
                             args.split, args.workload)
    except (ScenarioError, PresetError) as exc:
        raise SynthError(str(exc)) from None
    ds = load_dataset(root)
    print(f"wrote {root}: {len(ds.train)} train + {len(ds.test)} test traces, "
          f"{sum(len(t) for ts in ds.splits.values() for t in ts)} rows at {ds.period_s:g} s")
    return 0
