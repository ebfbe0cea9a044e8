"""Re-measure how this machine shares its cores, without re-profiling: ``adascale-rl calibrate``.

The scheduler constants of a device preset (the idle wake-up cost of a thread that slept,
the wait for a core at wake-up, the service's lengthening beside co-runners on the other cores;
:class:`adascale_rl.device.model.Scheduler`) are fitted once
by ``adascale-rl profile``. On a virtual machine they move with what the host runs: on the
reference VM the extra time of a request served after a 16 ms sleep went from 0.5-0.9 ms to
0.6-1.1 ms for the same variants between two measurements six hours apart
(``benchmarks/contention.py``, docs/BENCHMARKS.md), while the back-to-back latencies moved
by 4-18 %. ``calibrate`` times a spread of the catalog's saved variants (the same probe as
``profile``: fresh processes beside 0, 1, 2 and 2 x cores busy processes, back to back and at
the profile's request rate, plus two higher rates with no load), refits those constants and
writes a copy of the environment's spec and device preset that differ from the originals in
them only, with their provenance. Each run's samples are kept in ``OUT/samples/`` and the fit
pools them with the earlier runs kept there (``--fresh``: this run alone): one 2.5-minute
calibration fits the growth of the wake-up cost with the sleep from few points, and runs spread
over the hours an app runs average the host's drift. Use the spec to replay live runs against the
machine (``adascale-rl sim2real LIVE_DIR --env OUT/<name>.yaml --host-speed spec``), or to train and bench on it.

The host's speed moves too (on the reference VM the back-to-back service was 1.05-1.84x the
catalog's latency within one day): the preset also gets ``service_scale``, the median over the
timed variants of this run's back-to-back service with no load over the catalog's latency. The
simulated world serves every variant that much slower (or faster), while the app's own model
(the observation's prediction, the planners' tables, an exported prior) keeps the catalog's
numbers, as an app on a host that slowed down does. The scheduler constants are fitted against
the world's service time: the catalog's latency times the same ratio over the samples fitted
(the pooled runs', which may have run at other speeds than this one). ``--refit`` times nothing
and fits on the samples saved in ``OUT/samples/`` (the newest run's speed, its machine and
threads), to re-derive a preset after the fit or the model changed.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from adascale_rl._cpus import usable_cpus
from adascale_rl.device.presets import SERVICE_SCALE_RANGE
from adascale_rl.elastic import contention

#: the scheduler constants calibrate refits (the tick and the wake slice are read from the kernel by profile)
FITTED = ("idle_wake_ms", "idle_wake_per_ms", "idle_sleep_ms", "wake_cv", "wake_wait", "wake_lag_ms", "corun_stretch")
#: the request rates with no load at which the idle wake-up's growth with the sleep is measured
QUIET_RATES = (400.0, 1000.0)


class CalibrateError(ValueError):
    """A calibration that cannot run (another machine's catalog, a bad argument); nothing is written."""


def pick_variants(latency_ms: dict[str, float], n: int) -> list[str]:
    """``n`` variants spread evenly over the latency range (the fastest and the slowest included), in
    ascending latency."""
    if n < 2:
        raise CalibrateError(f"--variants must be at least 2 (the fit is a line in the latency), not {n}")
    ids = sorted(latency_ms, key=lambda v: (latency_ms[v], v))
    if n >= len(ids):
        return ids
    picks = sorted({int(round(i)) for i in np.linspace(0, len(ids) - 1, n)})
    return [ids[i] for i in picks]


def service_drift(samples: dict, latency_ms: dict[str, float]) -> dict[str, float]:
    """Each measured variant's median back-to-back service with no load over the catalog's latency (a median too)."""
    return {v: float(np.median(samples[v]["levels"][0]["b2b"])) / latency_ms[v]
            for v in latency_ms if v in samples and samples[v]["levels"].get(0, {}).get("b2b")}


def host_speed(drift: dict[str, float]) -> tuple[float, float | None]:
    """(the median of :func:`service_drift`'s ratios, nan if none; that median to 4 digits if a host can run at it
    (:data:`~adascale_rl.device.presets.SERVICE_SCALE_RANGE`), else None)."""
    ratio = float(np.median(list(drift.values()))) if drift else math.nan
    return ratio, (round(ratio, 4) if SERVICE_SCALE_RANGE[0] <= ratio <= SERVICE_SCALE_RANGE[1] else None)


def merge_samples(runs: list[dict]) -> dict:
    """One set of samples from several calibration runs of the same design (levels, rates, threads): every
    (variant, level, rate) cell's samples pooled; a variant is kept where any run timed it."""
    meta = dict(runs[0]["_meta"])
    meta["rounds"] = sum(int(r["_meta"]["rounds"]) for r in runs)
    out: dict = {"_meta": meta}
    for run in runs:
        for vid, s in run.items():
            if vid == "_meta":
                continue
            dst = out.setdefault(vid, {"levels": {}, "quiet": {}})
            for part in ("levels", "quiet"):
                for key, c in s[part].items():
                    contention.add_cell(dst[part], key, c)
    return out


def _design(samples: dict) -> tuple:
    m = samples["_meta"]
    return (tuple(int(x) for x in m["levels"]), float(m["rate_hz"]), tuple(float(r) for r in m["quiet_rates"]),
            int(m["threads"]), int(m["cores"]))


def catalog_key(catalog) -> str:
    """A digest of what a fit depends on in the catalog (its variants' ids and latencies): samples taken against
    another profile of the same environment are not pooled."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps([[v.id, v.latency_ms] for v in catalog.variants]).encode()).hexdigest()[:16]


def previous_runs(folder: Path, env_id: str, catalog: str, design: tuple | None, log: Callable[[str], None] = print
                  ) -> list[tuple[str, dict]]:
    """(time, samples) of the calibration runs saved in ``folder`` for ``env_id``, the catalog whose
    :func:`catalog_key` is ``catalog`` and the same design (None: any), oldest first; a file that cannot be read
    or is of another environment, catalog or design is named and left out."""
    import json

    runs = []
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
            samples = contention.samples_from_json(doc["samples"])
            ok = doc["env"] == env_id and doc.get("catalog_key") == catalog and design in (None, _design(samples))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log(f"left out {f}: not a calibration run's samples ({exc})")
            continue
        if not ok:
            log(f"left out {f}: another environment, catalog or measurement design")
            continue
        runs.append((str(doc.get("measured_at", f.stem)), samples))
    return runs


def _spec_doc(spec, device_file: str) -> dict[str, Any]:
    """The spec's YAML mapping with the device replaced and every file it names made absolute (the new spec lives
    in another folder)."""
    doc: dict[str, Any] = {"id": spec.id, "description": spec.description, "device": device_file,
                           "catalog": str(spec.catalog_path().resolve()), "dataset": str(spec.dataset_path())}
    if spec.workload:
        w = Path(spec.workload).expanduser()
        doc["workload"] = str(w.resolve()) if w.suffix in (".yaml", ".yml") and w.exists() else spec.workload
    doc.update(reward=spec.reward, period_s=spec.period_s, max_episode_steps=spec.max_episode_steps)
    return doc


def prepare(env: str, out: str | os.PathLike, *, variants: int = 6, rounds: int = 2, threads: int = 1,
            quick: bool = False, refit: bool = False) -> dict[str, Any]:
    """Everything a calibration checks before it times anything: the spec, its catalog's saved variants, its device
    preset's file and this machine's cores; a :class:`CalibrateError` (or the spec's or catalog's own error) names
    what is wrong."""
    from adascale_rl import paths
    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.device.presets import load_device
    from adascale_rl.elastic.variants import variant_files
    from adascale_rl.environment.spec import find_spec

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CalibrateError(f"--out {out} is a file; give a folder")
    shipped = paths.shipped_folder_of(out)
    if shipped is not None:
        raise CalibrateError(f"--out {out} is inside the shipped data ({shipped}): its spec would replace the shipped "
                             f"one; calibrate into a folder of your own")
    for name, v in (("--rounds", rounds), ("--threads", threads)):
        if not isinstance(v, int) or v < 1:
            raise CalibrateError(f"{name} must be a positive integer, not {v}")
    pick_variants({}, variants)  # the count, before anything is read
    spec = find_spec(env)
    catalog = load_catalog(spec.catalog_path())
    if not isinstance(catalog.extra.get("elastic"), dict):
        raise CalibrateError(f"{spec.id}'s catalog {catalog.name} was not profiled on a machine (no saved variants "
                             f"to time): calibrate re-measures a catalog written by adascale-rl profile")
    preset = load_device(spec.device)
    cores = usable_cpus()
    if preset.cores != cores and not refit:  # a refit times nothing: the samples say which machine (run_calibrate)
        raise CalibrateError(f"{spec.id}'s device {preset.name} has {preset.cores} cores and this process may run on "
                             f"{cores} CPUs (its affinity mask; the machine has {os.cpu_count()}): calibrate "
                             f"re-measures the machine a preset describes")
    dev_path = Path(preset.path)
    targets = (out / "devices" / dev_path.name, out / spec.file_name)
    for new, old in zip(targets, (dev_path, spec.path)):
        if old is not None and new.resolve() == Path(old).resolve():
            raise CalibrateError(f"--out {out} would write {new} over the file it re-measures; calibrate into "
                                 f"another folder")
    # FileNotFoundError names the profile command that rebuilds them; a refit times nothing
    files = {} if refit else variant_files(catalog)
    if refit and not any((out / "samples").glob("*.json")):
        raise CalibrateError(f"--refit: no saved samples in {out / 'samples'} to fit on; run calibrate without "
                             f"--refit to measure")
    try:  # the folders now, not after minutes of timing
        (out / "samples").mkdir(parents=True, exist_ok=True)
        (out / "devices").mkdir(exist_ok=True)
    except OSError as exc:
        raise CalibrateError(f"--out {out}: cannot write there ({exc.strerror}: {exc.filename})") from None
    latency = {v.id: float(v.latency_ms) for v in catalog.variants}
    levels = contention.levels_for(cores) if not quick else [0, 2 * cores]
    return {"spec": spec, "catalog": catalog, "files": files, "preset": preset, "dev_path": dev_path,
            "cores": cores, "latency": latency, "chosen": pick_variants(latency, variants), "out": out,
            "levels": levels}


def run_calibrate(env: str, out: str | os.PathLike, *, variants: int = 6, rounds: int = 2, threads: int = 1,
                  quick: bool = False, seed: int = 0, fresh: bool = False, refit: bool = False,
                  progress: Callable[[int], None] | None = None, log: Callable[[str], None] = print,
                  prepared: dict[str, Any] | None = None) -> dict[str, Any]:
    """Measure, save the samples in ``out/samples/``, refit on them and on the earlier runs saved there (unless
    ``fresh``), and write ``out/devices/<preset>.yaml`` and ``out/<spec file name>``; returns
    ``{"spec", "device", "variants", "fitted", "not_fitted", "before", "drift", "drift_median", "speed_spread",
    "service_scale", "runs", "samples", "refit"}`` (``service_scale``: the median drift written into the preset, None
    if it could not be measured; ``speed_spread``: :func:`~adascale_rl.elastic.contention.speed_spread` of this run's
    samples; ``not_fitted``: constants fitted but not used, and why; ``runs``: the measurement times pooled, this
    run's last). ``refit``: measure nothing; the newest run saved in ``out/samples/``
    is "this run" (its service scale), pooled with the earlier ones of its design unless ``fresh`` (re-derives a
    preset from saved samples, e.g. after this code changed). ``prepared``: what :func:`prepare` returned for the
    same arguments (it is called otherwise)."""
    import json

    import yaml

    from adascale_rl._files import atomic_write_text, read_data
    from adascale_rl.device.model import Scheduler
    from adascale_rl.device.presets import PresetError, load_preset_file, parse_preset
    from adascale_rl.elastic.profile import CONTENTION_RATE_HZ
    from adascale_rl.elastic.variants import catalog_data
    from adascale_rl.environment.spec import load_spec

    p = prepared or prepare(env, out, variants=variants, rounds=rounds, threads=threads, quick=quick, refit=refit)
    spec, catalog, files, preset, dev_path = p["spec"], p["catalog"], p["files"], p["preset"], p["dev_path"]
    cores, latency, chosen, out, levels = p["cores"], p["latency"], p["chosen"], p["out"], p["levels"]
    rate = next((float(v.contention["rate_hz"]) for v in catalog.variants if v.contention), CONTENTION_RATE_HZ)
    key = catalog_key(catalog)
    if refit:
        saved = previous_runs(out / "samples", spec.id, key, None, log)
        if not saved:
            raise CalibrateError(f"--refit: no samples of {spec.id} on this catalog in {out / 'samples'}")
        started, samples = saved[-1]
        chosen = [v for v in samples if v != "_meta"]
        earlier = [] if fresh else [(w, s) for w, s in saved[:-1] if _design(s) == _design(samples)]
        # the machine and the threads the samples were measured with, not this one's or the command line's
        cores, threads = int(samples["_meta"]["cores"]), int(samples["_meta"]["threads"])
        if cores != preset.cores:
            raise CalibrateError(f"--refit: the samples in {out / 'samples'} were measured on {cores} cores and "
                                 f"{spec.id}'s device {preset.name} has {preset.cores}")
        log(f"refitting on the samples saved in {out / 'samples'} (newest: {started}); nothing is timed")
    else:
        example = catalog_data(catalog).x_test[:1]
        log(f"timing {len(chosen)} of {len(latency)} variants of {catalog.name} ({', '.join(chosen)}) beside "
            f"{', '.join(str(x) for x in levels)} busy processes ({rounds} interleaved round(s)), back to back, at "
            f"{rate:g} requests/s and, with no load, at {', '.join(f'{r:g}' for r in QUIET_RATES)} requests/s")
        started = time.strftime("%Y-%m-%d %H:%M")
        samples = contention.measure({v: files[v] for v in chosen}, tuple(example.shape), threads=threads,
                                     levels=levels, rounds=rounds, calls=30 if quick else 200,
                                     duration_s=0.3 if quick else 1.0, rate_hz=rate,
                                     quiet_rates=QUIET_RATES[:1] if quick else QUIET_RATES, seed=seed,
                                     progress=progress)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        earlier = [] if fresh else previous_runs(out / "samples", spec.id, key, _design(samples), log)
        saved_json = contention.samples_to_json(samples)
        atomic_write_text(out / "samples" / f"{stamp}.json", json.dumps(
            {"env": spec.id, "catalog": catalog.name, "catalog_key": key, "measured_at": started,
             "samples": saved_json}))
        samples = contention.samples_from_json(saved_json)  # fitted as saved (a --refit gives the same numbers)
    runs = [when for when, _ in earlier] + [started]
    pooled = merge_samples([s for _, s in earlier] + [samples]) if earlier else samples
    drift = service_drift(samples, {v: latency[v] for v in chosen})
    ratio, scale = host_speed(drift)  # the machine's speed against the catalog, this run's (the one written)
    spread = contention.speed_spread(samples, chosen)
    moved = contention.spread_median(spread)
    warning = contention.moved_warning(spread, "The constants fitted and the host's speed")
    if warning:
        log(warning + ("" if refit else " (more rounds, --rounds, or runs pooled over the hours average more)"))
    # the scheduler's constants act on the world's service time (the catalog's x the host's speed): fitted on it,
    # at the speed of the samples fitted (the pooled runs', which may differ from this run's)
    timed = {v: latency[v] for v in pooled if v != "_meta" and v in latency}
    fit_scale = host_speed(service_drift(pooled, timed))[1] or 1.0
    fitted = contention.fit_scheduler(pooled, {v: t * fit_scale for v, t in timed.items()}, cores, threads)
    if len(runs) > 1:
        fitted = {k: (v, f"{how}; samples of {len(runs)} calibration runs ({runs[0]} to {runs[-1]}) pooled")
                  for k, (v, how) in fitted.items()}
    # the stretch is the lengthening beside busy processes on the cores the probe's threads leave; the simulator
    # applies it at the catalog's threads (model.corun_ms): a stretch probed at other threads is not that one
    app_threads = catalog.threads if catalog.threads is not None else preset.cores
    unfit = {}
    if "corun_stretch" in fitted and threads != app_threads:
        fitted.pop("corun_stretch")
        unfit["corun_stretch"] = (f"probed at {threads} thread(s) while the catalog's app runs {app_threads}: the "
                                  f"cores the probe left free are not the ones the app leaves; measure with "
                                  f"--threads {app_threads}")
        log(f"corun_stretch not refitted: {unfit['corun_stretch']}")

    doc = read_data(dev_path, PresetError)
    before = {k: (doc.get(k) or {}).get("value") if isinstance(doc.get(k), dict) else None
              for k in FITTED + ("service_scale",)}
    before["service_scale"] = before["service_scale"] or 1.0  # a preset without the key: the catalog's speed
    for key in FITTED:
        if key in fitted:
            value, how = fitted[key]
            doc[key] = {"value": float(value), "source": f"measured on this host by adascale-rl calibrate at "
                                                         f"{started}: {how}"}
        elif isinstance(doc.get(key), dict):  # kept, and said so
            kept = {k: v for k, v in doc[key].items() if k == "value"}
            origin = doc[key].get("source") or doc[key].get("derived") or ""
            why = (f"did not use its fit: {unfit[key]}" if key in unfit else
                   "could not fit it: too few or implausible samples")
            kept["derived"] = f"kept from {dev_path.name} (adascale-rl calibrate at {started} {why}): {origin}"
            doc[key] = kept
        elif key in unfit:  # an optional constant the preset leaves at the model's default: said so
            default = getattr(Scheduler(), key)
            doc[key] = {"value": float(default), "derived": (
                f"not set in {dev_path.name} (the model's default, {default:g}); adascale-rl calibrate at {started} "
                f"did not use its fit: {unfit[key]}")}
    if scale is not None:
        doc["service_scale"] = {"value": scale, "source": (
            f"measured on this host by adascale-rl calibrate at {started}: median over {len(drift)} variants of "
            f"(median back-to-back service with no load / the catalog's latency), this run's samples only (the "
            f"host's speed at the time; range {min(drift.values()):.3f}-{max(drift.values()):.3f}"
            + (f"; a variant's rounds {moved:.2f}x apart, median over {len(spread)} variants" if spread else "")
            + ")")}
        speed = (f"# latency, median over the timed variants: {ratio:.3f}: the simulator serves every variant that\n"
                 f"# much slower than the catalog says, while the app's model keeps the catalog (re-profile to\n"
                 f"# rewrite it).\n")
    else:
        doc.pop("service_scale", None)
        why = "no quiet back-to-back samples" if math.isnan(ratio) else f"an implausible ratio, {ratio:.3g}"
        speed = f"# latency: not used ({why}), so the catalog's speed (1).\n"
    when = (f"{started} (refitted at {time.strftime('%Y-%m-%d %H:%M')} from the saved samples, nothing timed)"
            if refit else started)
    unused = f" (not {', '.join(unfit)}: see its entry)" if unfit else ""
    header = (f"# {preset.name} recalibrated by `adascale-rl calibrate` at {when}: a copy of {dev_path}\n"
              f"# whose scheduler constants ({', '.join(FITTED)}) and host's speed (service_scale) were fitted\n"
              f"# anew{unused}; everything else is the original's. Median back-to-back service with no load / the "
              f"catalog's\n" + speed)
    new_dev = out / "devices" / dev_path.name
    parse_preset(doc, str(new_dev))  # a preset the simulator cannot read is not written
    atomic_write_text(new_dev, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120))
    load_preset_file(new_dev)
    spec_file = out / spec.file_name
    spec_text = (f"# {spec.id} on this machine as it was at {started}: {spec.path or spec.id} with the device preset\n"
                 f"# recalibrated by `adascale-rl calibrate` (use it with --env {spec_file})\n"
                 + yaml.safe_dump(_spec_doc(spec, f"devices/{dev_path.name}"), sort_keys=False, allow_unicode=True,
                                  width=120))
    atomic_write_text(spec_file, spec_text)
    load_spec(spec_file)
    return {"spec": spec_file, "device": new_dev, "variants": chosen, "fitted": fitted, "not_fitted": unfit,
            "before": before, "drift": drift, "drift_median": ratio, "speed_spread": spread, "service_scale": scale,
            "runs": runs, "samples": pooled, "refit": refit}


def calibrate_command(args) -> int:
    """``adascale-rl calibrate``: arguments from :mod:`adascale_rl.cli`."""
    from tqdm import tqdm

    # every bad argument fails before anything is timed
    p = prepare(args.env, args.out, variants=args.variants, rounds=args.rounds, threads=args.threads,
                quick=args.quick, refit=args.refit)
    bar = tqdm(total=args.rounds * len(p["levels"]), unit="load level", desc=f"calibrate {p['spec'].name}",
               disable=args.no_progress or args.refit, dynamic_ncols=True)
    try:
        res = run_calibrate(args.env, args.out, variants=args.variants, rounds=args.rounds, threads=args.threads,
                            quick=args.quick, seed=args.seed, fresh=args.fresh, refit=args.refit,
                            progress=bar.update, log=tqdm.write, prepared=p)
    finally:
        bar.close()
    runs = res["runs"]
    one = "the newest saved run" if res["refit"] else "this run"
    print(f"fitted on {one if len(runs) == 1 else f'{len(runs)} runs pooled ({runs[0]} to {runs[-1]})'}"
          f" (samples in {Path(args.out) / 'samples'})\n")
    print("| constant | before | now |\n|---|---:|---:|")
    for key in FITTED:
        now = res["fitted"].get(key, (None,))[0]
        b = res["before"].get(key)
        kept = "kept" if b is not None else "the default"  # an optional constant the preset does not set (wake_cv)
        print(f"| {key} | {'' if b is None else f'{b:g}'} | {kept if now is None else f'{now:g}'} |")
    now = res["service_scale"]
    print(f"| service_scale | {res['before']['service_scale']:g} | {'1 (not used: see below)' if now is None else f'{now:.4g}'} |")
    if res["drift"]:
        d = res["drift"]
        print(f"\nmedian back-to-back service / catalog latency: median {res['drift_median']:.3f} "
              f"(range {min(d.values()):.3f}-{max(d.values()):.3f} over {len(d)} variants)")
    if res["speed_spread"]:
        sp = res["speed_spread"]
        print(f"the same between this run's rounds, the largest round's median over the smallest: median "
              f"{contention.spread_median(sp):.2f}x (range {min(sp.values()):.2f}-{max(sp.values()):.2f}x)")
    print(f"\nwrote {res['device']} and {res['spec']}; replay live runs in it (every host constant the "
          f"calibration's, not each run's own probe) with:\n"
          f"  adascale-rl sim2real LIVE_DIR --env {res['spec']} --host-speed spec")
    return 0
