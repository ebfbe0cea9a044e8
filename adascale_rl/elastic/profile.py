"""``adascale-rl profile``: train (or load) the elastic model, derive its variants, profile them
on this machine, write a measured catalog, a device preset for this host and an environment spec.

Outputs, into ``--out DIR`` (default ``./adascale-profile``; never the package's shipped
``envs/``, ``agents/`` or ``traces/``, which other environments and the tests read)::

    DIR/catalogs/local-<arch>.json   the catalog (adascale_rl.device.catalog format; local-<arch>-<data>
                                     for data other than the bundled digits)
    DIR/devices/local-<arch>.yaml    this host as a device preset (named as the catalog)
    DIR/MyHost-<Data>.yaml           environment spec AdaScale/MyHost-<Data>-v4 using both
                                     (by paths relative to itself), for --env DIR/MyHost-<Data>.yaml

The trained supernet is cached under ``$ADASCALE_RL_CACHE`` (default
``~/.cache/adascale-rl/elastic/<key>/``) with the deployable TorchScript variants.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import psutil
import torch

from adascale_rl._cpus import usable_cpus
from adascale_rl.device.catalog import Catalog, Variant
from adascale_rl.elastic import contention, host
from adascale_rl.elastic.data import ImageData, load_data
from adascale_rl.elastic.profilers import (amdahl_parallel_frac, load_torchscript, peak_memory, save_torchscript,
                                           time_variants)
from adascale_rl.elastic.variants import Built, Recipe, build_variants, full_recipe, quick_recipe, trained_supernet

# Compute-bound fraction cannot be measured without controlling the clock (no DVFS access in a
# VM). It is derived with a roofline rule: the share of the measured latency NOT explained by
# streaming the variant's weights and activations from DRAM at an assumed bandwidth, clamped
# to the range implied by published memory-clock sensitivities (median latency moves 11-48 %
# with the memory clock: arXiv 2606.16106, arXiv 2509.17970; shared/CALIBRATION.md).
DRAM_GB_S = 10.0
#: the open-loop request rate of the contention measurement: a 60 Hz app (a display's frame rate)
CONTENTION_RATE_HZ = 60.0
CBF_RANGE = (0.52, 0.89)
CBF_RULE = (f"derived, not measured (no DVFS control here): 1 - (weight bytes + 2 x activation bytes) / "
            f"({DRAM_GB_S:g} GB/s assumed per-core DRAM bandwidth) / measured latency, clamped to "
            f"[{CBF_RANGE[0]}, {CBF_RANGE[1]}] = 1 - the 11-48 % memory-clock sensitivity of median latency "
            "published in arXiv 2606.16106 / 2509.17970")


def _arch_name() -> str:
    m = platform.machine().lower()
    return {"x86_64": "x86", "amd64": "x86", "aarch64": "arm64", "arm64": "arm64"}.get(m, m)


#: where ``profile`` writes when ``--out`` is not given: a folder in the working directory
DEFAULT_OUT = Path("adascale-profile")


def _env_name(data: ImageData) -> str:
    # "MyHost": not the shipped Local-<Data> (this project's reference host), whose id it would shadow
    return "MyHost-" + {"digits": "Digits", "cifar10": "Cifar10", "folder": "Images"}.get(data.name, data.name.title())


def output_paths(out: Path, env_name: str) -> tuple[Path, Path, Path]:
    """(catalog, device preset, environment spec) for the catalog path ``out``: the envs/ layout,
    ``ROOT/catalogs/NAME.json``, ``ROOT/devices/NAME.yaml`` and ``ROOT/<Env>.yaml``, where ROOT is
    the folder above ``catalogs/`` (else the catalog's own folder)."""
    name = out.stem
    root = out.parent.parent if out.parent.name == "catalogs" else out.parent
    return out, root / "devices" / f"{name}.yaml", root / f"{env_name}.yaml"


def check_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that is a file (or looks like the catalog file older
    versions took) or lies in the shipped data: profiling must never overwrite the package's files."""
    from adascale_rl import paths

    if out.suffix == ".json" or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out}: profile writes a folder (catalogs/, devices/ and an environment spec); "
                         f"name a folder, e.g. --out {DEFAULT_OUT}")
    folder = paths.shipped_folder_of(out)
    if folder is not None:
        raise ValueError(f"--out {out} is inside the shipped data ({folder}), whose files other environments "
                         f"and the tests read; profile into a folder of your own, e.g. --out {DEFAULT_OUT}")


@torch.no_grad()
def _activation_bytes(model: torch.nn.Module, example: torch.Tensor) -> int:
    total = 0

    def hook(m, i, o):
        nonlocal total
        if isinstance(o, torch.Tensor):
            total += o.numel() * o.element_size()

    hooks = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        model(example)
    finally:
        for h in hooks:
            h.remove()
    return total


def compute_bound_frac(b: Built, example: torch.Tensor, latency_ms: float) -> float:
    bytes_per_weight = 1 if "int8" in b.spec.ops else 4
    act = _activation_bytes(b.float_model, example) // (4 // bytes_per_weight)
    mem_ms = (b.params * bytes_per_weight + 2 * act) / (DRAM_GB_S * 1e9) * 1e3
    return float(min(CBF_RANGE[1], max(CBF_RANGE[0], 1.0 - mem_ms / latency_ms)))


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def run_profile(*, data_spec: str = "digits", out: Path, quick: bool = False, threads: int | None = None,
                seed: int = 0, progress: bool = True, log=print) -> dict:
    recipe: Recipe = quick_recipe(seed) if quick else full_recipe(seed)
    threads = threads or usable_cpus()
    if threads < 1:
        raise ValueError(f"--threads {threads} must be at least 1")
    data = load_data(data_spec, seed)
    if recipe.subset:
        data = data.subset(*recipe.subset)
    arch = recipe.arch_for(data)
    supernet, tlog, folder = trained_supernet(arch, data, recipe.train, progress=progress,
                                              threads=recipe.train_threads, log=log)
    specs = recipe.specs()
    log(f"deriving {len(specs)} variants (BN calibration, pruning / low-rank fine-tuning, int8 calibration)")
    with _bar(len(specs), "building variants", progress) as bar:
        built = build_variants(supernet, data, recipe, progress=bar.update, threads=recipe.train_threads)
    example = data.x_test[:1].contiguous()
    art = folder / "variants"
    files, sizes = {}, {}
    for b in built:
        files[b.spec.id] = art / f"{b.spec.id}.pt"
        sizes[b.spec.id] = save_torchscript(b.deploy, example, files[b.spec.id])
        with torch.no_grad():
            ref, got = b.deploy(data.x_test[:8]), load_torchscript(files[b.spec.id])(data.x_test[:8])
        if not torch.allclose(ref, got, atol=1e-4, rtol=1e-3):
            raise RuntimeError(f"variant {b.spec.id}: the saved TorchScript disagrees with the built module")

    rapl = bool(host.rapl_files())
    cores = usable_cpus()
    fit_n = cores if threads == 1 else threads
    others = tuple(t for t in (1, fit_n) if t != threads)
    sessions = recipe.timing_sessions
    log(f"timing {len(files)} variants in fresh processes, interleaved, {sessions} session{'' if sessions == 1 else 's'} at "
        f"{', '.join(str(t) for t in (threads, *others))} thread(s), batch 1")
    with host.LoadMonitor() as mon, _bar(sessions * (1 + len(others)), "timing sessions", progress) as bar:
        timings = time_variants(files, tuple(example.shape), threads=threads, also_threads=others,
                                sessions=sessions, rounds=recipe.timing_rounds, calls=recipe.timing_calls,
                                seed=seed, progress=bar.update)
    background = mon.summary()
    mem = {}
    with _bar(len(files), "peak memory (fresh processes)", progress) as bar:
        for k, f in files.items():
            mem[k] = peak_memory(f, threads=threads, shape=tuple(example.shape))
            bar.update(1)

    levels = contention.levels_for(cores) if not quick else [0, 2 * cores]
    c_rounds = 1 if quick else 2
    quiet_rates = () if quick else (400.0, 1000.0)
    log(f"timing {len(files)} variants beside {', '.join(str(x) for x in levels)} busy processes ({c_rounds} "
        f"interleaved round(s)), back to back and at {CONTENTION_RATE_HZ:g} requests/s")
    with _bar(c_rounds * len(levels), "contention", progress) as bar:
        load = contention.measure(files, tuple(example.shape), threads=threads, levels=levels, rounds=c_rounds,
                                  calls=20 if quick else 200, duration_s=0.2 if quick else 1.0,
                                  rate_hz=CONTENTION_RATE_HZ, quiet_rates=quiet_rates, seed=seed,
                                  progress=bar.update)
    warning = contention.moved_warning(contention.speed_spread(load), "The contention curves and the scheduler "
                                                                      "constants fitted from them")
    if warning:
        log(warning + " (adascale-rl calibrate re-measures them)")

    n_test = len(data.y_test)
    t_rule = (f"median of {sessions * recipe.timing_rounds * recipe.timing_calls} batch-1 calls of the TorchScript "
              f"variant at {threads} torch thread(s) after warm-up, in {sessions} fresh processes, interleaved "
              f"round-robin with all variants (shuffled order per round); p95 in branch.latency_p95_ms; "
              f"background CPU load in machine.background_cpu_util")
    prov_common = {
        "accuracy": {"kind": "measured", "method": f"top-1 on the held-out test split ({n_test} images; "
                                                   f"{data.description}) of the deployed variant"},
        "latency_ms": {"kind": "measured", "method": t_rule},
        "compute_bound_frac": {"kind": "derived", "rule": CBF_RULE},
        "parallel_frac": {"kind": "derived", "rule": (
            f"Amdahl fit p = (1 - T_{fit_n}/T_1) / (1 - 1/{fit_n}) of median latencies measured at 1 and {fit_n} "
            f"threads in alternating fresh-process sessions of the same run, clamped to [0, 1]; measured under the "
            f"background load in machine.background_cpu_util" if fit_n > 1 else
            "1-core machine: no parallel fraction can be fitted; 0 assumed")},
        "peak_mem_mb": {"kind": "measured", "method": (
            "RSS delta in a fresh process: peak RSS (1 ms sampling and ru_maxrss) while loading the TorchScript file "
            "and running 30 batch-1 inferences, minus RSS after torch was imported and warmed up "
            "(adascale_rl.elastic.memprobe)")},
        "size_mb": {"kind": "measured", "method": "bytes of the TorchScript file (torch.jit.save of the traced variant)"},
    }
    energy_prov = ({"kind": "measured", "method": "RAPL package energy_uj delta over the timed calls / calls "
                                                  "(includes whatever else ran on the package)"} if rapl else
                   {"kind": "derived", "rule": host.POWER_RULE})
    variants, rows = [], []
    for b in built:
        k = b.spec.id
        t = timings[k]
        lat = t.median_ms
        if rapl and t.rapl_mj_per_call:
            energy = float(sorted(t.rapl_mj_per_call)[len(t.rapl_mj_per_call) // 2])
        else:
            energy = host.ESTIMATED_DYNAMIC_W_PER_CORE * t.cpu_ms
        branch = {**b.spec.branch.to_json(), "latency_p95_ms": round(t.p95_ms, 4),
                  **{f"latency_{n}thread_ms": round(t.median_at(n), 4) for n in sorted(t.samples) if n != threads},
                  "cpu_ms_per_inference": round(t.cpu_ms, 4),
                  "macs": b.macs, "params": b.params, "load_and_first_ms": round(mem[k]["load_and_first_ms"], 2)}
        v = Variant(id=k, branch=branch, operators=tuple(b.spec.catalog_operators), accuracy=round(b.accuracy, 4),
                    latency_ms=round(lat, 4),
                    compute_bound_frac=round(compute_bound_frac(b, example, lat), 3),
                    parallel_frac=round(amdahl_parallel_frac(t.median_at(1), t.median_at(fit_n), fit_n), 3),
                    peak_mem_mb=round(max(mem[k]["peak_delta_mb"], 0.01), 3),
                    size_mb=round(sizes[k] / 1e6, 4), energy_mj=round(max(energy, 1e-6), 5),
                    provenance={**prov_common, "energy_mj": energy_prov}, contention=contention.summarise(load, k))
        variants.append(v)
    name = out.stem
    machine = host.machine_description(threads, background)
    machine["runtime_baseline_rss_mb"] = round(sorted(m["baseline_rss_mb"] for m in mem.values())[len(mem) // 2], 1)
    catalog = Catalog(
        name=name, device=name, task=f"{data.name} top-1 ({data.num_classes} classes), held-out test split",
        reference=(f"measured on this host ({machine['cpu_model']}, {machine['logical_cores']} logical cores) at its "
                   f"fixed clock with {threads} torch thread(s), batch 1, TorchScript variants"),
        machine=machine, variants=variants, threads=threads,
        threads_origin=f"measured: every latency in this catalog was measured at {threads} torch thread(s)",
        extra={"elastic": {"recipe": recipe.name, "data": data_spec, "splits": data.split_sizes(), "seed": seed,
                           "arch": arch.to_json(), "train": recipe.train.to_json(),
                           "joint_training": {"epochs": tlog.epochs, "steps": tlog.steps, "macs": tlog.macs,
                                              "wall_s": round(tlog.wall_s, 1),
                                              "threads": recipe.train_threads},
                           "operators": {"prune": f"torch-pruning MetaPruner, group L2 magnitude, ratio "
                                                  f"{recipe.prune_ratio}, {recipe.finetune_epochs} epochs KD fine-tune",
                                         "lowrank": f"SVD of 1x1 convs / linear layers keeping {recipe.lowrank_keep} "
                                                    f"of their MACs, {recipe.finetune_epochs} epochs KD fine-tune",
                                         "int8": "FX post-training static quantisation, x86 backend, 256 "
                                                 "calibration images"}}})
    cat_path, dev_path, env_path = output_paths(out, _env_name(data))
    catalog.save(cat_path)
    # --quick measures too little to fit the scheduler: its preset keeps the documented defaults
    fitted = {} if quick else contention.fit_scheduler(load, {v.id: v.latency_ms for v in variants},
                                                       cores, threads)
    write_device_preset(dev_path, name, threads, mem, fitted)
    write_env_spec(env_path, _env_name(data), name, data, device_path=dev_path, catalog_path=cat_path)
    return {"catalog": cat_path, "device": dev_path, "env": env_path, "variants": variants, "machine": machine}


def _scheduler_yaml(fitted: dict) -> str:
    """The scheduler block of the host's device preset: the kernel's tick and slice, the fitted constants
    (or the reference machine's values, said to be assumptions, where this run could not fit them)."""
    from adascale_rl.device.model import Scheduler

    online = os.cpu_count() or 1  # the kernel scales its base slice by the CPUs online, whatever a mask allows
    tick, tick_origin = contention.kernel_tick_ms()
    tick_line = (f'  value: {tick:g}\n  source: "{tick_origin}"' if tick is not None else
                 f'  value: 4\n  derived: "assumption: CONFIG_HZ=250 (not readable here: {tick_origin})"')
    slice_ms, slice_rule = contention.eevdf_slice_ms(online)
    default = Scheduler()
    lines = ["# How the OS shares the cores (adascale_rl.device.model; docs/ENVIRONMENT.md, \"Contention\").",
             f"tick_ms:\n{tick_line}",
             f'wake_slice_ms:\n  value: {slice_ms:g}\n  derived: "{slice_rule}; assumes an EEVDF kernel (Linux 6.6 or later)"']
    for key in ("wake_wait", "wake_lag_ms", "idle_wake_ms", "idle_wake_per_ms", "idle_sleep_ms", "wake_cv",
                "corun_stretch"):
        if key in fitted:
            value, how = fitted[key]
            lines.append(f'{key}:\n  value: {value:g}\n  source: "measured on this host by adascale-rl profile: {how}"')
        elif key == "corun_stretch":
            lines.append(f'{key}:\n  value: 0\n  derived: "assumption: no lengthening of the service beside '
                         f'co-runners (the default); this profile run did not fit it (--quick, no busy-process level '
                         f'that leaves the app its cores, or too few samples)"')
        elif key == "wake_cv":
            lines.append(f'{key}:\n  value: {getattr(default, key):g}\n  derived: "assumption: the default of '
                         f'adascale_rl.device.model.WAKE_CV (a gamma of shape 2, derived from the spread measured on the '
                         f'AMD reference VM); this profile run did not fit it (--quick, or too few or implausible samples)"')
        else:
            lines.append(f'{key}:\n  value: {getattr(default, key):g}\n  derived: "assumption: the default of '
                         f'adascale_rl.device.model.Scheduler, fitted on the reference machine (envs/devices/local-x86.yaml); '
                         f'this profile run did not fit it (--quick, or too few or implausible samples)"')
    return "\n".join(lines) + "\n"


def write_device_preset(path: Path, name: str, threads: int, mem: dict, fitted: dict | None = None) -> Path:
    from adascale_rl._files import atomic_write_text
    from adascale_rl.device.presets import load_preset_file

    cores = usable_cpus()
    machine_cpus = psutil.cpu_count() or cores
    ladder, ladder_origin = host.cpufreq_ladder()
    kind, _, origin = ladder_origin.partition(": ")
    total_mb = round(psutil.virtual_memory().total / 2**20)
    init = sorted(m["load_and_first_ms"] for m in mem.values())
    init_ms = init[len(init) // 2]
    power_src = "RAPL readable" if host.rapl_files() else "no power counter readable here (RAPL absent in this VM)"
    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    from adascale_rl.context.monitor import Monitor

    temp_c = Monitor.soc_temp_c()  # the sensor the selector's monitor reads, or None
    battery_origin = ('source: "measured on this host: psutil.sensors_battery() reports no battery (mains power)"'
                      if battery is None else
                      'derived: "a battery is present but psutil does not report its capacity; this preset treats '
                      'the host as always on mains power (edit battery_wh and the saver values to simulate it)"')
    text = f"""# This host, written by `adascale-rl profile` at {time.strftime('%Y-%m-%d %H:%M')}.
# Every number says where it comes from: `source` = read or measured on this host;
# `derived` = worked out, or an assumption (said so). See docs/ELASTIC.md.
name: {name}
description: "{host.cpu_model()}, {cores} usable CPUs of the machine's {machine_cpus}{' (virtual machine)' if host.is_virtual_machine() else ''}, {total_mb} MB RAM, mains power"
cores:
  value: {cores}
  source: "measured on this host: the CPUs this process may run on (its affinity mask, os.sched_getaffinity), {cores} of the machine's {machine_cpus}"
mem_total_mb:
  value: {total_mb}
  source: "measured on this host: psutil.virtual_memory().total"
dvfs_mhz:
  value: {ladder}
  {kind}: "{origin}"
idle_w:
  value: {host.ESTIMATED_IDLE_W_PER_CORE * cores:g}
  derived: "ESTIMATE ({power_src}): {host.ESTIMATED_IDLE_W_PER_CORE:g} W idle share per core x {cores} cores (assumption, see adascale_rl/elastic/host.py)"
dyn_w_max:
  value: {(host.ESTIMATED_BUSY_W_PER_CORE - host.ESTIMATED_IDLE_W_PER_CORE) * cores:g}
  derived: "ESTIMATE ({power_src}): ({host.ESTIMATED_BUSY_W_PER_CORE:g} W busy - {host.ESTIMATED_IDLE_W_PER_CORE:g} W idle) per core x {cores} cores; {host.ESTIMATED_BUSY_W_PER_CORE:g} W/core ~ package TDP / cores of a 5th-gen Xeon Scalable (assumption)"
freq_exponent:
  value: 2.75
  derived: "dynamic power grows about f^2.5 to f^3 with DVFS (shared/CALIBRATION.md); midpoint chosen. Moot while the ladder has one point"
thermal_resistance_c_per_w:
  value: 0.5
  derived: "assumption: a server package under datacenter cooling; this VM's share of it cannot heat it measurably, so chosen such that flat-out load stays far below the throttle point"
thermal_time_constant_s:
  value: 60
  derived: "assumption (moot: the throttle point is never reached with the resistance above)"
throttle_c:
  value: 95
  derived: "assumption: Xeon packages throttle near TjMax ~100 C; no sensor is readable in this VM"
release_c:
  value: 90
  derived: "assumption: 5 C hysteresis below throttle_c"
temp_sensor:
  value: {'true' if temp_c is not None else 'false'}
  source: "measured on this host: {'a chip temperature is readable (' + format(temp_c, '.0f') + ' C when profiled)' if temp_c is not None else 'no chip temperature is readable (psutil.sensors_temperatures() finds no CPU or SoC sensor), so the selector observes the temperature as missing and so does the simulator'}"
battery_wh:
  value: null
  {battery_origin}
saver_threshold_pct:
  value: null
  source: "no battery, no battery saver"
saver_cap_mhz:
  value: null
  source: "no battery, no battery saver"
storage_read_mb_s:
  value: 500
  derived: "assumption: virtio disk of a cloud VM; not measured (the variant files were in the page cache when profiled)"
model_init_ms:
  value: {round(init_ms, 1)}
  source: "measured on this host: median over variants of torch.jit.load + first batch-1 inference in a fresh process (adascale_rl.elastic.memprobe), {threads} thread(s)"
""" + _scheduler_yaml(fitted or {})
    atomic_write_text(path, text)
    load_preset_file(path)  # refuse to leave a preset the simulator cannot read
    return path


def write_env_spec(path: Path, env_name: str, name: str, data: ImageData, *, device_path: Path | None = None,
                   catalog_path: Path | None = None) -> Path:
    """The environment spec of this host. With the paths of the written device preset and
    catalog, it names them by paths relative to itself (usable as ``--env path`` from any
    folder); without, by name (files in the shipped ``envs/devices`` and ``envs/catalogs``)."""
    from adascale_rl._files import atomic_write_text
    from adascale_rl.environment.spec import VERSION

    def ref(p: Path | None, shipped: str) -> str:
        if p is None:
            return f"{name}            # {shipped}"
        return f"{Path(os.path.relpath(p, path.parent)).as_posix()}    # relative to this file"

    # the shipped digits workload is scaled to the digits catalog measured on the reference
    # machine (its derivations name the latencies); other data needs its own workload file
    workload = ("workload: local-digits       # envs/workloads/<workload>.yaml: app modes laid over the recordings "
                "(scaled to envs/catalogs/local-x86.json; re-derive for another machine)\n"
                if data.name == "digits" else "")
    text = f"""# Written by `adascale-rl profile` at {time.strftime('%Y-%m-%d %H:%M')}: use it with --env {path.name} (a path)
id: AdaScale/{env_name}-v{VERSION}
description: This host ({host.cpu_model()}, {usable_cpus()} usable CPUs) running the profiled elastic model on {data.name}, in recorded host contexts
device: {ref(device_path, "envs/devices/<device>.yaml")}
catalog: {ref(catalog_path, "envs/catalogs/<catalog>.json")}
dataset: host-recorded-v2    # a shipped traces/<dataset>, or a path to your own recording (relative: to this file)
{workload}reward: balanced
period_s: 1.0
max_episode_steps: 300
"""
    atomic_write_text(path, text)
    return path


def _print_table(variants, log=print) -> None:
    log(f"{'id':34s} {'acc':>6s} {'lat_ms':>8s} {'p95_ms':>8s} {'mem_mb':>7s} {'size_mb':>8s} {'energy_mj':>9s}")
    for v in variants:
        log(f"{v.id:34s} {v.accuracy:6.3f} {v.latency_ms:8.3f} {v.branch['latency_p95_ms']:8.3f} "
            f"{v.peak_mem_mb:7.2f} {v.size_mb:8.3f} {v.energy_mj:9.4f}")


def _shown(p: Path) -> str:
    """A path as the user would type it here: relative to the working directory when inside it."""
    p = Path(p).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(p)


def usage_lines(env_file: Path, env_id: str) -> list[str]:
    """How to use a written environment spec: the last lines ``profile`` prints."""
    f = _shown(env_file)
    return [f"To use {env_id}, pass its spec file as --env (it is not in `adascale-rl envs list`, which shows "
            f"the shipped environments):",
            f"  adascale-rl bench --env {f}",
            f"  adascale-rl evaluate --env {f} --policy planner",
            f"  adascale-rl train --env {f}",
            f"  python: import gymnasium as gym; from adascale_rl.environment import register_spec; "
            f"env = gym.make(register_spec({f!r}))"]


def profile_command(args) -> int:
    out = Path(args.out) if args.out else DEFAULT_OUT
    check_out(out)
    # one catalog per kind of data (digits, cifar10, folder): profiles of several can share a folder
    kind = args.data.split(":", 1)[0]
    catalog = out / "catalogs" / (f"local-{_arch_name()}.json" if kind == "digits" else
                                  f"local-{_arch_name()}-{kind}.json")
    res = run_profile(data_spec=args.data, out=catalog, quick=args.quick, threads=args.threads, seed=args.seed,
                      progress=not args.no_progress)
    _print_table(res["variants"])
    bg = res["machine"].get("background_cpu_util", {})
    print(f"background CPU load while timing: mean {bg.get('mean')}, max {bg.get('max')}")
    from adascale_rl.environment.spec import load_spec

    env_id = load_spec(res["env"]).id
    print(f"wrote {_shown(res['catalog'])} ({len(res['variants'])} variants)\nwrote {_shown(res['device'])}\n"
          f"wrote {_shown(res['env'])} (environment {env_id})")
    if args.quick:
        best = max(v.accuracy for v in res["variants"])
        print(f"note: --quick trains the network for seconds and times it briefly (best accuracy {best:.2f}): a "
              f"check that the pipeline runs on this machine, not an environment to train or judge controllers "
              f"on; run profile without --quick for that")
    for line in usage_lines(res["env"], env_id):
        print(line)
    return 0
