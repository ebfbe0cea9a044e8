"""The simulator's contention model against a measurement on this machine, in one run.

    python benchmarks/contention.py [--catalog envs/catalogs/local-x86.json] [--device local-x86]
                                    [--variants ID ...] [--levels 0 1 2 4] [--rounds 4] [--rate 60]
                                    [--service-scale preset|measured|variant|X] [--wake preset|measured]
                                    [--corun preset|measured|X] [--noise env|none]
                                    [--json FILE | --from-json FILE] [--cpus 0 ...] [--compare FILE]

Times at least three variants of a catalog written by ``adascale-rl profile`` (their
TorchScript files from the profile's cache) beside 0, 1, 2 and 2 x cores busy processes, levels
interleaved in rounds, in two modes: back to back (a saturated app) and serving requests
that arrive at ``--rate`` (an app that sleeps between requests; response time from arrival
to result; the probe drops a request once the next one has arrived, a stale frame). Beside
each measured mean and p95 of the requests served it prints the simulator's prediction for
the same context (:func:`adascale_rl.device.model.contention` and
:func:`~adascale_rl.device.model.serve` with the catalog's latency, the device preset's
scheduler constants, ``bg_runnable`` = the busy processes and the time between two requests
as the deadline) and the relative error, and the share of the requests lost as stale,
measured and predicted. The target: within 20 % for the mean and the p95 at every level.
``--from-json`` compares the model with samples a ``--json`` run saved (no variant files needed,
so any machine can re-read a run).

The model takes the cores of the machine the run measured (the CPUs this process may run on, its
affinity mask; saved with the samples and read back by ``--from-json``; a file that does not say, the
preset's) where they differ from the preset's, and says so in the header; the preset's other constants
stay (the kernel's tick and slice do not change with a mask). ``--cpus`` pins the run (this process, its
probes and its busy processes) to those CPUs: a machine of fewer cores, as a container's cpuset or
``taskset`` makes one.

The simulator serves a variant in the catalog's latency times the preset's ``service_scale``
(the host's speed against its catalog; 1 in a shipped preset, measured by ``adascale-rl
calibrate``). ``--service-scale measured`` takes it from the run itself, as ``calibrate`` does:
the median over the timed variants of the back-to-back median with no busy process over the
catalog's latency. That one number is then fitted on the run's quiet back-to-back cells, and
the table checks what the contention model adds to it: the slow-down beside busy processes,
the wake-up costs and the stale requests. ``--service-scale variant`` gives each variant its own
ratio (its quiet back-to-back median over its catalog latency), as the live replay does
(``sim2real --host-speed run``): a host may speed variants up unevenly (int8 kernels against
fp32 ones on another CPU), and then one median mixes the host's speed into the contention
error; the quiet back-to-back cells are then fitted one by one.

``--wake measured`` likewise takes the wake-up cost (the preset's ``idle_wake_ms`` and
``idle_wake_per_ms``) from the run, as ``adascale-rl run``'s probe does before a live run: the
least-squares line through the excess of the mean response at ``--rate`` with no busy process
over the service the prediction gives each variant (each weighted by 1 / the squared standard
error of its excess); and how far it spreads (``wake_cv``: the ratio of what the quiet responses
spread beyond the back-to-back service to the cost the line gives each variant). The quiet cells
at the rate are then fitted too, and the table checks the contention model beside the busy processes.

``--corun measured`` likewise takes the service's lengthening beside co-runners (``corun_stretch``,
:func:`adascale_rl.device.model.corun_ms`) from the run, as ``profile`` and ``calibrate`` fit it
(:func:`adascale_rl.elastic.contention.fit_corun`): from the back-to-back means beside the busy
processes that leave the app's threads their cores (1 on two cores), over the quiet ones; those cells
are then fitted.

The prediction is the simulator's over many intervals in the cell's context (``--noise env``, the default):
the environments draw each interval's latency factor (log-normal, sigma 0.08, and a spike of 1.5-2.5x in 3 %
of the intervals: ``adascale_rl.environment.env``), so the latencies they give one context over many
intervals are a mixture over those factors (:func:`adascale_rl.environment.env.noise_quadrature`), as a
cell's samples are one over its rounds, each a fresh process at the host's speed of that minute.
Each factor counts by the requests it serves (a slow interval beyond the app's capacity serves fewer), as the
samples do. ``--noise none`` predicts one interval at factor 1 (what this benchmark printed before 2026-12-03
13:00). With the noise the quiet back-to-back mean is predicted 3.3 % above the service at factor 1 (the noise's
mean), besides the frame jitter's 0.5 %.

``--compare FILE`` holds the measurement against itself: it sets this run's measured mean and p95 of
every cell beside those of another ``--json`` run of the same cells (the same command minutes or days
apart) and counts how many differ by more than the target. Where two runs of the measurement differ by
more than a factor (1 + 20 %) / (1 - 20 %) = 1.5, no prediction, whatever the model, is within 20 % of
both; the table says which cells those are.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adascale_rl import paths  # noqa: E402
from adascale_rl._cpus import pin, usable_cpus  # noqa: E402
from adascale_rl.context.recorder import machine_description  # noqa: E402
from adascale_rl.device import model  # noqa: E402
from adascale_rl.device.catalog import load_catalog  # noqa: E402
from adascale_rl.device.presets import PresetError, load_device, with_host_constants  # noqa: E402
from adascale_rl.elastic.calibrate import service_drift  # noqa: E402
from adascale_rl.elastic.contention import (corun_levels, fit_corun, fit_wake, levels_for, measure,  # noqa: E402
                                             quiet_rounds, round_splits, samples_from_json, samples_to_json,
                                             speed_spread)
from adascale_rl.elastic.variants import variant_files  # noqa: E402
from adascale_rl.environment.env import LATENCY_SIGMA, SPIKE_PROB, SPIKE_RANGE, noise_quadrature  # noqa: E402

#: the variants timed by default: the full model, a mid-size early exit, the int8 full model, a small int8 exit
DEFAULT_VARIANTS = ("w1-final-r24-fp32", "w1-e3-r24-fp32", "w1-final-r24-int8", "w1-e2-r16-int8")
TARGET = 0.20
#: two measurements further apart than this factor cannot both be within TARGET of one prediction
APART = (1.0 + TARGET) / (1.0 - TARGET)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def predict(lat_ms: float, busy: int, rate_hz: float | None, device, threads: float,
            noise: tuple[Sequence[float], Sequence[float]] = ((1.0,), (1.0,))) -> tuple[float, float, float]:
    """(mean, p95, lost share) the model predicts: back to back (``rate_hz`` None: the call alone, nothing lost)
    or the response time of the requests served at ``rate_hz``, the probe dropping a request once the next
    one has arrived (a stale frame: the model's deadline is the time between two requests). ``noise``
    (factors, weights): the intervals' latency factors the prediction mixes (the simulator's over many intervals,
    :func:`adascale_rl.environment.env.noise_quadrature`; by default one interval at factor 1)."""
    sched = model.Scheduler.of(device)
    sigma = model.FRAME_SIGMA
    stale_ms = 1e9 if rate_hz is None else 1000.0 / rate_hz
    points = []
    for f, w in zip(*noise):
        service = lat_ms * float(f)
        c = model.contention(np.float64(service), np.float64(rate_hz or 1e9), np.float64(busy), float(device.cores),
                             float(threads), sched)
        if rate_hz is None:  # the app times the call itself: no queueing before it, no request to lose
            c = c._replace(base_ms=np.float64(model.corun_ms(service, float(busy), float(device.cores),
                                                             float(threads), sched)))
        s = model.serve(c, np.float64(rate_hz or 1.0), np.float64(stale_ms), 1.0, 1.0, sigma)
        stale = float(model.stale_share(c, np.float64(stale_ms)))
        reached = float(s.served_frac) / (1.0 - stale)  # the requests within the app's capacity
        points.append((float(w), c, float(s.served_frac), float(s.mean_ms), reached, stale))
    # the measurement pools the requests served: a point counts by the requests it serves (a slow one, beyond the
    # app's capacity, serves fewer); the p95 of those served is the mixture's quantile below the stale ones (the
    # top of each part), and the requests beyond capacity are lost whatever their response time
    served = sum(w * sf for w, _, sf, _, _, _ in points)
    mean = sum(w * sf * m for w, _, sf, m, _, _ in points) / max(served, 1e-12)
    reached = max(sum(w * r for w, _, _, _, r, _ in points), 1e-12)
    parts = [(w * r / reached, c) for w, c, _, _, r, _ in points]
    kept = sum(w * r * (1.0 - st) for w, _, _, _, r, st in points) / reached
    return mean, model.mixture_quantile(parts, 0.95 * kept, sigma), 1.0 - served


def wake_cost(samples: dict, service_ms: dict[str, float], rate_hz: float, device) -> tuple[dict | None, str, set]:
    """The run's own wake-up cost: ({idle_wake_ms, idle_wake_per_ms[, wake_cv]}, how, the variants fitted) from the
    quiet cells at ``rate_hz``, against the service the prediction gives each variant (``service_ms``), as the live
    probe takes it (:func:`adascale_rl.elastic.contention.wake_excess`, :func:`~adascale_rl.elastic.contention.
    fit_wake_line` and :func:`~adascale_rl.elastic.contention.fit_wake_cv`), or (None, why, {})."""
    quiet = {v: samples[v]["levels"][0] for v in service_ms}
    fit = fit_wake(service_ms, {v: c["resp"] for v, c in quiet.items()}, {v: c["b2b"] for v, c in quiet.items()},
                   rate_hz, device.idle_sleep_ms)
    excess = fit["excess_ms"]
    if fit["rms_ms"] is None:
        return None, f"fewer than 2 variants sleep between requests at {rate_hz:g} Hz", set()
    if fit["idle_wake_ms"] is None:
        w0, w1 = fit["refused"]
        return None, f"the fit ({w0:.3f} ms + {w1:.3f} x service) is implausible", set()
    wake = {k: fit[k] for k in ("idle_wake_ms", "idle_wake_per_ms")}
    spread_how = "the preset's spread"
    if fit.get("wake_cv") is not None:
        wake["wake_cv"] = fit["wake_cv"]
        spread_how = f"spread {fit['wake_cv']:.2f} x its mean (rms {fit['wake_cv_rms_ms']:.3f} ms)"
    return (wake,
            f"measured in this run at {rate_hz:g} Hz with no busy process: {fit['idle_wake_ms']:.3f} ms + "
            f"{fit['idle_wake_per_ms']:.3f} x service (rms {fit['rms_ms']:.3f} ms over {len(excess)} variants), "
            f"{spread_how}; fitted on their quiet cells at {rate_hz:g} Hz", set(excess))


def round_means(xs, per_round) -> list[float]:
    """The mean of each round's samples (``per_round``: how many each round took, in order); [] when the samples
    do not say (a --json file of an older run)."""
    return [float(r.mean()) for r in round_splits(xs, per_round)]


def print_quiet_rounds(samples: dict, variants) -> None:
    """Each variant's quiet back-to-back cell round by round (each round a fresh process): the rounds' medians, the
    largest over the smallest (:func:`adascale_rl.elastic.contention.speed_spread`, what calibrate warns about) and
    the range of a round's p95 over its median (the spread within one process)."""
    spread = speed_spread(samples, variants)
    lines = []
    for v in variants:
        rounds = quiet_rounds(samples, v)
        if v not in spread:
            continue
        medians = [float(np.median(r)) for r in rounds]
        within = [float(np.percentile(r, 95)) / m for r, m in zip(rounds, medians)]
        lines.append(f"  {v + ':':<21} medians {' '.join(f'{m:.3f}' for m in medians)} ms (largest / smallest "
                     f"{spread[v]:.2f}x); p95 / median within a round {min(within):.2f}-{max(within):.2f}")
    if lines:
        print("quiet back to back, round by round (each round a fresh process):")
        print("\n".join(lines))


def load_run(path: str) -> tuple[dict, dict]:
    """(the file's JSON, its samples) of a ``--json`` run; ValueError naming what is wrong."""
    import json

    try:
        saved = json.loads(Path(path).read_text())
        return saved, samples_from_json(saved["samples"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not the samples of a --json run ({type(exc).__name__}: {exc})") from exc


def saved_settings(saved: dict) -> dict[str, str]:
    """The prediction settings a ``--json`` run printed its table with (``--noise``, ``--wake``, ``--corun``; a file
    written before an option existed: that option's behaviour then, "none" noise and the "preset" stretch)."""
    wake, corun = saved.get("wake"), saved.get("corun")
    return {"--noise": str(saved.get("noise", "none")),
            "--wake": str(wake.get("how", "preset")) if isinstance(wake, dict) else "preset",
            "--corun": str(corun.get("how", "preset")) if isinstance(corun, dict) else "preset"}


def settings_note(saved: dict, now: dict[str, str]) -> str | None:
    """A line naming the prediction settings in which this re-read differs from the saved run's own table (its
    predictions, not its measured cells, differ from the file's "rows"); None where they agree. The host's speed
    is not compared: the file keeps the speed its table used, not how it was asked for."""
    def same(a: str, b: str) -> bool:  # a number given two ways ("0.2", "0.20") is one setting
        try:
            return float(a) == float(b)
        except ValueError:
            return a == b

    then = saved_settings(saved)
    diff = [k for k in then if not same(then[k], now[k])]
    if not diff:
        return None
    return ("note: the saved run predicted with " + ", ".join(f"{k} {then[k]}" for k in diff) + "; this table with "
            + ", ".join(f"{k} {now[k]}" for k in diff) + " (the same measured cells, other predictions)")


def cell_stats(cell: dict, key: str) -> tuple[float, float]:
    """(mean, p95) of one cell's samples of ``key`` (``b2b`` or ``resp``)."""
    a = np.asarray(cell[key], dtype=np.float64)
    return float(a.mean()), float(np.percentile(a, 95))


def compare_runs(samples: dict, other: dict, variants, levels, rate_hz: float) -> list[dict]:
    """Each cell's measured (mean, p95) in two runs, ``other``'s over ``samples``' minus one, and whether the two
    are more than :data:`APART` apart (no prediction within :data:`TARGET` of both)."""
    rows = []
    for vid in variants:
        for level in levels:
            for mode, key in (("b2b", "b2b"), (f"{rate_hz:g}Hz", "resp")):
                (m1, q1), (m2, q2) = (cell_stats(s[vid]["levels"][level], key) for s in (samples, other))
                rows.append({"variant": vid, "busy": level, "mode": mode, "mean": m1, "other_mean": m2,
                             "diff_mean": m2 / m1 - 1.0, "p95": q1, "other_p95": q2, "diff_p95": q2 / q1 - 1.0,
                             "apart_mean": max(m1, m2) / min(m1, m2) > APART,
                             "apart_p95": max(q1, q2) / min(q1, q2) > APART})
    return rows


def print_comparison(rows: list[dict], name: str, measured_at: str) -> None:
    print(f"\nthe measurement against itself: this run's cells beside those of {name} (measured {measured_at}); "
          f"diff = {name} / this run - 1; '!' marks two runs more than {APART:.2f}x apart, which no prediction "
          f"can be within {TARGET:.0%} of both")
    print(f"{'variant':<20} {'busy':>4} {'mode':>6} {'mean':>8} {'other':>8} {'diff':>6}  {'p95':>8} {'other':>8} "
          f"{'diff':>6}")
    for r in rows:
        print(f"{r['variant']:<20} {r['busy']:>4} {r['mode']:>6} {r['mean']:>8.3f} {r['other_mean']:>8.3f} "
              f"{r['diff_mean']:>+6.0%}{'!' if r['apart_mean'] else ' '} {r['p95']:>8.3f} {r['other_p95']:>8.3f} "
              f"{r['diff_p95']:>+6.0%}{'!' if r['apart_p95'] else ''}")
    n = len(rows)
    far = {k: sum(abs(r[f"diff_{k}"]) > TARGET for r in rows) for k in ("mean", "p95")}
    apart = {k: sum(r[f"apart_{k}"] for r in rows) for k in ("mean", "p95")}
    print(f"two runs of the measurement: beyond {TARGET:.0%} of each other {far['mean']} of {n} means and "
          f"{far['p95']} of {n} p95s; more than {APART:.2f}x apart (no prediction within {TARGET:.0%} of both) "
          f"{apart['mean']} means and {apart['p95']} p95s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", default=str(paths.envs_dir() / "catalogs" / "local-x86.json"))
    ap.add_argument("--device", default="local-x86", help="device preset (name or YAML path)")
    ap.add_argument("--variants", nargs="+", default=None,
                    help=f"variants to time (default: {' '.join(DEFAULT_VARIANTS)}; with --from-json, the file's)")
    ap.add_argument("--levels", nargs="+", type=int, default=None,
                    help="busy-process counts (default: 0, 1, 2 and 2 x cores; with --from-json, the file's)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--rate", type=float, default=60.0, help="request rate of the open-loop mode (Hz)")
    ap.add_argument("--calls", type=int, default=300, help="back-to-back calls per variant, level and round")
    ap.add_argument("--duration", type=float, default=1.0, help="open-loop seconds per variant, level and round")
    ap.add_argument("--service-scale", default="preset", metavar="preset|measured|variant|X",
                    help="the host's speed against the catalog the prediction uses: the device preset's "
                         "service_scale (default), 'measured' in this run with no busy process (the median over "
                         "the variants), 'variant' (each variant's own, measured the same way), or a number")
    ap.add_argument("--wake", default="preset", choices=("preset", "measured"),
                    help="the wake-up cost (and its spread, wake_cv) the prediction uses: the device preset's "
                         "(default) or 'measured' in this run at --rate with no busy process (its quiet cells at the "
                         "rate are then fitted)")
    ap.add_argument("--corun", default="preset", metavar="preset|measured|X",
                    help="the service's lengthening beside busy processes that leave the app its cores "
                         "(corun_stretch) the prediction uses: the device preset's (default), 'measured' in this "
                         "run, as profile and calibrate fit it (its cells back to back at those levels are then "
                         "fitted), or a number (another run's, to check it on this one)")
    ap.add_argument("--noise", default="env", choices=("env", "none"),
                    help="the intervals' latency noise the prediction mixes over: the environments' (default; the "
                         "simulator over many intervals, as a cell pools its rounds) or none (one interval at "
                         "factor 1)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the samples and the table as JSON")
    ap.add_argument("--cpus", type=int, nargs="+", default=None, metavar="CPU",
                    help="pin the run and its busy processes to these CPUs (a machine of fewer cores); the model "
                         "takes their count as the cores")
    ap.add_argument("--from-json", default=None, metavar="FILE",
                    help="measure nothing: compare the model with the samples a previous --json run saved")
    ap.add_argument("--compare", default=None, metavar="FILE",
                    help="also set the measured cells beside another --json run's of the same variants and levels "
                         "(the measurement's own reproducibility)")
    args = ap.parse_args(argv)
    saved = None
    if args.from_json:
        try:
            saved, samples = load_run(args.from_json)
        except ValueError as exc:
            ap.error(f"--from-json {args.from_json}: {exc}")
        in_file = [v for v in samples if v != "_meta"]
        file_levels = sorted({int(lv) for v in in_file for lv in samples[v]["levels"]})
        args.variants = args.variants or in_file
        args.levels = args.levels or file_levels
        absent = [v for v in args.variants if v not in samples] + [
            f"{v} at {lv} busy" for v in args.variants if v in samples for lv in args.levels
            if lv not in samples[v]["levels"]]
        if absent:
            ap.error(f"{args.from_json} has no samples of {', '.join(map(str, absent))} (it has "
                     f"{' '.join(in_file)} at {' '.join(map(str, file_levels))} busy processes)")
    args.variants = args.variants or list(DEFAULT_VARIANTS)
    if args.cpus is not None:
        if args.from_json:
            ap.error("--cpus pins a measurement; --from-json re-reads one (with the cores it ran on)")
        try:
            pinned = pin(args.cpus)
        except ValueError as exc:
            ap.error(f"--cpus: {exc}")
        print(f"pinned to CPU(s) {' '.join(map(str, pinned))}: busy processes and probes run there too")
    run_cores: int | None = usable_cpus()
    if saved is not None:  # the cores the saved run measured on (its probes' CPUs); an older file's: the preset's
        run_cores = samples.get("_meta", {}).get("cores")
        if run_cores is not None and (not isinstance(run_cores, int) or isinstance(run_cores, bool)
                                      or run_cores < 1):
            ap.error(f"--from-json {args.from_json}: _meta.cores must be a positive integer, not {run_cores!r}")
    args.levels = args.levels or levels_for(run_cores)
    if args.service_scale not in ("preset", "measured", "variant"):  # before minutes of timing
        try:
            given = float(args.service_scale)
        except ValueError:
            given = math.nan
        if not 0.0 < given < math.inf:
            ap.error(f"--service-scale must be 'preset', 'measured', 'variant' or a positive number, not "
                     f"{args.service_scale!r}")
    elif args.service_scale in ("measured", "variant") and 0 not in args.levels:
        ap.error(f"--service-scale {args.service_scale} needs the level with no busy process (0) in --levels")
    if args.wake == "measured" and 0 not in args.levels:
        ap.error("--wake measured needs the level with no busy process (0) in --levels")
    if args.corun == "measured" and 0 not in args.levels:
        ap.error("--corun measured needs the level with no busy process (0) in --levels")
    corun_given = None
    if args.corun not in ("preset", "measured"):
        from adascale_rl.device.presets import CORUN_STRETCH_RANGE

        try:
            corun_given = float(args.corun)
        except ValueError:
            corun_given = math.nan
        lo, hi = CORUN_STRETCH_RANGE
        if not lo <= corun_given <= hi:
            ap.error(f"--corun must be 'preset', 'measured' or a number in [{lo:g}, {hi:g}], not {args.corun!r}")
    if len(args.variants) < 3:
        ap.error("time at least three variants")
    other = None
    if args.compare:  # before minutes of timing
        try:
            other_saved, other = load_run(args.compare)
        except ValueError as exc:
            ap.error(f"--compare {args.compare}: {exc}")
        lacking = [f"{v} at {lv} busy" for v in args.variants for lv in args.levels
                   if lv not in other.get(v, {}).get("levels", {})]
        if lacking:
            ap.error(f"--compare {args.compare} has no samples of {', '.join(lacking)}")
        if float(other_saved.get("rate", args.rate)) != float(saved["rate"] if saved else args.rate):
            ap.error(f"--compare {args.compare} served requests at {other_saved.get('rate')} Hz, this run at "
                     f"{saved['rate'] if saved else args.rate:g} Hz")
    cat = load_catalog(args.catalog)
    device = load_device(args.device)
    preset_cores = device.cores
    run_cores = run_cores or preset_cores
    if run_cores != device.cores:  # the machine the run measures, not the one the preset describes
        device = replace(device, cores=run_cores)
    threads = cat.threads if cat.threads is not None else device.cores
    if threads > run_cores:
        print(f"note: {threads:g} torch threads on {plural(run_cores, 'core')}: the probes oversubscribe them "
              f"before any busy process starts")
    missing = [v for v in args.variants if v not in cat.ids]
    if missing:
        ap.error(f"not in {args.catalog}: {', '.join(missing)}")
    t0 = time.perf_counter()
    if saved is not None:
        args.rounds, args.rate = saved["rounds"], saved["rate"]
        print(f"samples from {args.from_json} (measured {saved['measured_at']})")
        note = settings_note(saved, {"--noise": args.noise, "--wake": args.wake, "--corun": args.corun})
        if note:
            print(note)
    else:
        files = variant_files(cat)
        shape = (1, 1, 8, 8)
        if isinstance(cat.extra.get("elastic"), dict):
            arch = cat.extra["elastic"].get("arch", {})
            shape = (1, arch.get("in_channels", 1), arch.get("input_size", 8), arch.get("input_size", 8))
        samples = measure({v: files[v] for v in args.variants}, shape, threads=int(threads), levels=args.levels,
                          rounds=args.rounds, calls=args.calls, rate_hz=args.rate, duration_s=args.duration)
    secs = time.perf_counter() - t0
    catalog_ms = {v: cat.variants[cat.index(v)].latency_ms for v in args.variants}
    quiet = service_drift(samples, catalog_ms)  # as calibrate measures the host's speed
    if args.service_scale == "preset":
        scale, how = device.service_scale, f"the preset's service_scale ({device.service_scale:g})"
    elif args.service_scale == "measured":
        if not quiet:
            ap.error("--service-scale measured needs samples with no busy process (level 0)")
        scale = float(np.median(list(quiet.values())))
        how = (f"measured in this run: median over {len(quiet)} variants of the back-to-back median with no busy "
               f"process / the catalog's latency = {scale:.3f} (range {min(quiet.values()):.3f}-"
               f"{max(quiet.values()):.3f}); fitted on the quiet back-to-back cells")
    elif args.service_scale == "variant":
        if set(quiet) != set(args.variants):
            ap.error("--service-scale variant needs every variant's samples with no busy process (level 0)")
        scale = {v: float(quiet[v]) for v in args.variants}
        how = ("measured in this run for each variant: its back-to-back median with no busy process / its catalog "
               "latency (" + ", ".join(f"{v} {x:.3f}" for v, x in scale.items()) + "); fitted on the quiet "
               "back-to-back cells one by one")
    else:
        scale = float(args.service_scale)
        how = f"given ({scale:g})"
    scale_of = (lambda v: scale[v]) if isinstance(scale, dict) else (lambda v: scale)  # noqa: E731
    wake_fitted: set = set()
    noise = noise_quadrature() if args.noise == "env" else ((1.0,), (1.0,))
    noise_mean = float(np.dot(*noise))  # the mean interval's latency factor: the mean service the prediction gives
    wake_how = (f"the preset's (idle_wake_ms {device.idle_wake_ms:g} + idle_wake_per_ms {device.idle_wake_per_ms:g}"
                f" x service)")
    if args.wake == "measured":
        wake, wake_how, wake_fitted = wake_cost(samples, {v: catalog_ms[v] * scale_of(v) * noise_mean
                                                          for v in args.variants}, args.rate, device)
        if wake is None:
            ap.error(f"--wake measured: {wake_how}")
        device = with_host_constants(device, wake, "measured by benchmarks/contention.py --wake measured")
    corun_how = f"the preset's (corun_stretch {device.corun_stretch:g})"
    corun_fitted: set = set()
    if args.corun == "measured":
        fit = fit_corun({**samples, "_meta": {**samples.get("_meta", {}), "levels": args.levels}}, int(run_cores),
                        int(threads), args.variants)
        if fit is None:
            ap.error(f"--corun measured: no level of {' '.join(map(str, args.levels))} busy processes leaves the app's "
                     f"{int(threads)} thread(s) a core of their own on {plural(run_cores, 'core')}, or no variant has "
                     f"enough back-to-back calls at such a level and with none")
        try:
            device = with_host_constants(device, {"corun_stretch": fit[0]}, "measured by benchmarks/contention.py "
                                                                             "--corun measured")
        except PresetError as exc:
            ap.error(f"--corun measured: the fit is implausible ({exc}); {fit[1]}")
        corun_how = f"measured in this run: {fit[0]:g}, {fit[1]}; those cells back to back are fitted"
        corun_fitted = set(corun_levels(args.levels, int(run_cores), int(threads)))
    elif corun_given is not None:
        device = with_host_constants(device, {"corun_stretch": corun_given}, "given to benchmarks/contention.py")
        corun_how = f"given ({corun_given:g})"
    noise_how = (f"the environments' (log-normal sigma {LATENCY_SIGMA:g}, spikes of {SPIKE_RANGE[0]:g}-"
                 f"{SPIKE_RANGE[1]:g}x in {SPIKE_PROB:.0%} of the intervals), mixed over {len(noise[0])} points, "
                 f"mean factor {noise_mean:.4f}" if args.noise == "env" else "none (one interval at factor 1)")
    # a re-read describes the machine and the load of the run it re-reads (a file written before it recorded its
    # machine says so), not those of the machine that re-reads it
    import torch

    here = f"{machine_description()}, torch {torch.__version__}"
    if saved is None:
        machine, load = here, os.getloadavg()[0]
    else:
        machine = saved.get("machine") or f"not recorded in the file (re-read on {here})"
        load = float(saved["load_average"])
    cores_how = plural(run_cores, "core") + ("" if run_cores == preset_cores else
                                        f" (the model's; the preset {device.name} has {preset_cores})")
    print(f"machine: {machine}; {cores_how} in the model; catalog {Path(args.catalog).name}, device {device.name}, "
          f"{int(threads)} torch thread(s); {args.rounds} interleaved rounds; load average after the run {load:.2f}"
          + ("" if saved is not None else f"; {secs:.0f} s"))
    print(f"prediction: adascale_rl.device.model.contention with the catalog's latency x the host's speed and the "
          f"preset's scheduler constants; error = predicted / measured - 1; target |error| <= {TARGET:.0%}")
    print(f"host's speed against the catalog: {how}")
    print(f"wake-up cost: {wake_how}")
    print(f"co-runners' lengthening of the service: {corun_how}")
    print(f"intervals' latency noise: {noise_how}")
    print_quiet_rounds(samples, args.variants)
    print("rounds: the range of the per-round measured means over their mean (the measurement's own spread "
          "between rounds minutes apart)")
    header = (f"{'variant':<20} {'cat ms':>7} {'busy':>4} {'mode':>6} {'n':>5} {'mean':>8} {'pred':>8} {'err':>6} "
              f"{'rounds':>13} {'p95':>8} {'pred':>8} {'err':>6} {'lost':>6} {'pred':>6}")
    print(header)
    worst = 0.0
    rows = []
    misses = {"mean": 0, "p95": 0, "inside": 0, "cells": 0, "rounds_known": 0, "fitted": 0, "fitted_out": 0}
    for vid in args.variants:
        lat = catalog_ms[vid]
        for level in args.levels:
            cell = samples[vid]["levels"][level]
            for mode, key, rate in (("b2b", "b2b", None), (f"{args.rate:g}Hz", "resp", args.rate)):
                a = np.asarray(cell[key])
                m_mean, m_p95 = cell_stats(cell, key)
                m_lost = 1.0 - cell["served"] / cell["issued"] if rate is not None and cell["issued"] else 0.0
                p_mean, p_p95, p_lost = predict(lat * scale_of(vid), level, rate, device, threads, noise)
                e1, e2 = p_mean / m_mean - 1.0, p_p95 / m_p95 - 1.0
                worst = max(worst, abs(e1), abs(e2))
                per = round_means(a, cell.get(f"{key}_per_round"))
                lo, hi = (min(per), max(per)) if len(per) > 1 else (math.nan, math.nan)
                spread = f"{lo / m_mean - 1:+.0%}..{hi / m_mean - 1:+.0%}" if len(per) > 1 else "n/a"
                misses["cells"] += 1
                misses["mean"] += abs(e1) > TARGET
                misses["p95"] += abs(e2) > TARGET
                fitted = (level == 0 and (rate is not None and args.wake == "measured" and vid in wake_fitted
                                          or rate is None and args.service_scale == "variant")
                          or rate is None and level in corun_fitted)
                misses["fitted"] += fitted
                misses["fitted_out"] += fitted and abs(e1) > TARGET
                misses["fitted_out"] += fitted and abs(e2) > TARGET
                misses["inside"] += abs(e1) > TARGET and lo <= p_mean <= hi
                misses["rounds_known"] += len(per) > 1
                rows.append((vid, lat, level, mode, len(a), m_mean, p_mean, e1, lo, hi, m_p95, p_p95, e2, m_lost,
                             p_lost))
                print(f"{vid:<20} {lat:>7.3f} {level:>4} {mode:>6} {len(a):>5} {m_mean:>8.3f} {p_mean:>8.3f} "
                      f"{e1:>+6.0%} {spread:>13} {m_p95:>8.3f} {p_p95:>8.3f} {e2:>+6.0%} {m_lost:>6.3f} {p_lost:>6.3f}")
    print(f"largest |error|: {worst:.0%} ({'within' if worst <= TARGET else 'NOT within'} the {TARGET:.0%} target); "
          f"beyond {TARGET:.0%}: {misses['mean']} of {misses['cells']} means"
          + (f" ({misses['inside']} of them inside the range of their per-round means)" if misses["rounds_known"] else "")
          + f", {misses['p95']} of {misses['cells']} p95s")
    if misses["fitted"]:
        n = 2 * (misses["cells"] - misses["fitted"])
        out = misses["mean"] + misses["p95"] - misses["fitted_out"]
        print(f"the cells no fit saw (beside busy processes, and quiet ones the fits left out): {n - out} of {n} "
              f"numbers within {TARGET:.0%}")
    comparison = None
    if other is not None:
        comparison = compare_runs(samples, other, args.variants, args.levels, args.rate)
        print_comparison(comparison, Path(args.compare).name, other_saved.get("measured_at", "?"))
    if args.json:
        import json

        keep = samples_to_json({k: v for k, v in samples.items() if k in args.variants or k == "_meta"})
        Path(args.json).write_text(json.dumps({
            "measured_at": saved["measured_at"] if saved is not None else time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine if saved is None or saved.get("machine") else None, "load_average": load,
            "rounds": args.rounds,
            "rate": args.rate, "catalog": str(args.catalog), "device": str(args.device), "service_scale": scale,
            "wake": {"how": args.wake, "idle_wake_ms": device.idle_wake_ms, "idle_wake_per_ms": device.idle_wake_per_ms,
                     "wake_cv": device.wake_cv},
            "corun": {"how": args.corun, "corun_stretch": device.corun_stretch}, "noise": args.noise,
            "samples": keep,
            "rows": [dict(zip(("variant", "catalog_ms", "busy", "mode", "n", "mean", "pred_mean", "err_mean",
                               "round_mean_min", "round_mean_max", "p95", "pred_p95", "err_p95", "lost", "pred_lost"),
                              r)) for r in rows],
            **({"compared_with": str(args.compare), "comparison": comparison} if comparison is not None else {})}))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
