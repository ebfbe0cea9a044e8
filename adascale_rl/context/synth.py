"""Synthesize resource-context traces from a device preset, a scenario and a seed.

The generator models what happens *around* the controller's app -- never the
app's own effect, which the simulator adds (its CPU time, its heat and thermal
throttling, its battery drain, its memory):

* ``bg_cpu_util``: OS services (mean + AR(1) noise + short spikes), plus background
  apps that come and go as on/off processes with heavy-tailed on and off
  durations (several superposed), plus the CPU of apps that grab memory. Each
  step is the average over the sampling interval, clipped to [0, 1].
* ``bg_runnable``: the same background CPU demand before clipping, in cores: the
  run queue, ``max(demand, 0) x cores`` of the device preset, so that
  ``bg_cpu_util = min(1, bg_runnable / cores)`` holds by construction (up to the
  decimals written) and demand above 1 (oversubscribed cores) shows only here.
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
from pathlib import Path
from typing import Sequence

import numpy as np

from adascale_rl import paths
from adascale_rl.context import schema
from adascale_rl.context.generators import segment, snap_to_ladder  # noqa: F401  (snap_to_ladder is public here)
from adascale_rl.context.scenarios import (
    Recipe, Scenario, ScenarioError, Workload, load_recipe, load_scenario, load_workload, names,
)
from adascale_rl.context.traces import (
    TraceError, load_dataset, make_meta, save_dataset,
)
from adascale_rl.device.presets import DevicePreset, PresetError, device_names, load_device

COLUMNS = list(schema.NAMES)
#: decimals written per column (finer than any sensor resolves; keeps files small)
DECIMALS = {"t_s": 6, "bg_cpu_util": 4, "bg_runnable": 2, "mem_avail_mb": 1, "ambient_temp_c": 2,
            "battery_pct": 4}
#: how_made's statement of the run-queue rule (every synthesized dataset carries bg_runnable)
RUNNABLE_RULE = ("bg_runnable is the background CPU demand before clipping, in cores (demand x the preset's {cores} "
                 "cores), so bg_cpu_util = min(1, bg_runnable / {cores}).")


class SynthError(ValueError):
    """A synthesis request that cannot be met; one sentence naming the value at fault."""


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
        seg, battery, mode = segment(dev, sc, wl, int(seed), n, float(period_s), str(i), battery, mode)
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
            f"thermal throttling, battery drain and memory are added by the simulator. "
            f"{RUNNABLE_RULE.format(cores=dev.cores)} {rc.description} "
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
                              f"exogenous context only (the simulator adds the controller's own effects). "
                              f"{RUNNABLE_RULE.format(cores=dev.cores)}",
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
    # short names: they work from any folder (a path relative to the repository does not)
    lines.append("recipes:   " + ", ".join(names("datasets")) + "   (synth --recipe NAME --out DIR)")
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
            single = getattr(args, "single_trace_defaults", {})  # from the parser's "one trace" group
            given = [f"--{k}" for k, default in single.items() if getattr(args, k, default) != default]
            if given:
                raise SynthError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --recipe "
                                 f"(the recipe sets devices, scenarios, seeds and splits); drop "
                                 f"{'it' if len(given) == 1 else 'them'} or drop --recipe")
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
