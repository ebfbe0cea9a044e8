"""Latency under real CPU contention: measure it, summarise it, fit the scheduler model to it.

:func:`measure` times saved TorchScript variants (:mod:`.loadprobe`, fresh processes) beside
0, 1, 2 and 2 x cores busy processes (:class:`adascale_rl.context.load.BusyProcesses`),
interleaving the levels in rounds so that drifting background load hits them alike, in two
modes: back to back (a saturated app) and open loop at a request rate (an app that sleeps
between requests). :func:`summarise` turns the samples into each variant's contention curve
(written into the catalog by ``adascale-rl profile``); :func:`fit_scheduler` fits the
constants of :class:`adascale_rl.device.model.Scheduler` that the samples determine, for
the device preset. ``benchmarks/contention.py`` holds the fitted model against a fresh
measurement.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from adascale_rl._cpus import usable_cpus
from adascale_rl.context.load import BusyProcesses
from adascale_rl.device.presets import CORUN_STRETCH_RANGE

#: a request whose response exceeds its service by more than this waited for a core at wake-up
WAKE_WAIT_MS = 0.5


#: the sample lists of a (variant, load level or rate) cell
SAMPLE_KEYS = ("b2b", "svc", "resp")


def add_cell(cells: dict, key, src: dict, keys: Sequence[str] = SAMPLE_KEYS, per_round: bool = False) -> dict:
    """Add the samples and counts of ``src`` to ``cells[key]`` (created empty); ``per_round``: also note how many
    samples of each list this addition brought (``"<list>_per_round"``), so a round's samples can be found."""
    cell = cells.setdefault(key, {"b2b": [], "svc": [], "resp": [], "issued": 0, "served": 0})
    for k in keys:
        cell[k] = cell[k] + list(src.get(k, []))
        if per_round:
            cell.setdefault(f"{k}_per_round", []).append(len(src.get(k, [])))
    cell["issued"] += int(src.get("issued", 0))
    cell["served"] += int(src.get("served", 0))
    return cell


def round_splits(xs: Sequence[float], per_round: Sequence[int] | None) -> list[np.ndarray]:
    """A cell's samples ``xs`` split by round (``per_round``: how many each round added, :func:`add_cell`); [] when
    the counts do not say (no counts, or counts that do not add up to the samples)."""
    if not per_round or sum(per_round) != len(xs):
        return []
    a = np.asarray(xs, dtype=np.float64)
    ends = np.cumsum(per_round)
    return [a[e - n:e] for n, e in zip(per_round, ends) if n]


#: a calibration warns when the rounds' quiet back-to-back medians are further apart than this factor (the median
#: over the variants): the host's speed moved while it measured (derived: the 20 % the contention benchmark's target
#: allows; on 2026-12-03 the AMD VM's rounds were 1.2-2.1x apart, docs/BENCHMARKS.md "Contention")
SPEED_SPREAD_WARN = 1.2


def quiet_rounds(samples: dict, variant: str) -> list[np.ndarray]:
    """A variant's back-to-back samples with no busy process, round by round (:func:`round_splits`; [] without the
    per-round counts)."""
    cell = samples.get(variant, {}).get("levels", {}).get(0) or {}
    return round_splits(cell.get("b2b", []), cell.get("b2b_per_round"))


def speed_spread(samples: dict, variants: Sequence[str] | None = None) -> dict[str, float]:
    """Each variant's quiet back-to-back medians round by round (:func:`quiet_rounds`), the largest over the
    smallest: how far the host's speed moved between the rounds of one measurement (1 = not at all). Variants without
    the per-round counts or with fewer than two rounds are left out."""
    out = {}
    for v in variants or [k for k in samples if k != "_meta"]:
        medians = [float(np.median(r)) for r in quiet_rounds(samples, v)]
        if len(medians) >= 2 and min(medians) > 0.0:
            out[v] = max(medians) / min(medians)
    return out


def spread_median(spread: dict[str, float]) -> float:
    """The median over the variants of :func:`speed_spread` (nan without any)."""
    return float(np.median(list(spread.values()))) if spread else math.nan


def moved_warning(spread: dict[str, float], what: str) -> str | None:
    """One warning line when :func:`spread_median` is beyond :data:`SPEED_SPREAD_WARN` (None otherwise): the rounds
    of a measurement ran at different speeds, so what is fitted from it (``what``) averages over them."""
    moved = spread_median(spread)
    if not moved > SPEED_SPREAD_WARN:
        return None
    worst = max(spread, key=spread.get)
    return (f"warning: the service moved between this run's rounds (each a fresh process): the quiet back-to-back "
            f"medians of a variant's rounds are {moved:.2f}x apart (median over {len(spread)} variants; {worst} "
            f"{spread[worst]:.2f}x). {what} average over it; a replay or a bench against them is as good as the "
            f"host is steady")


def samples_to_json(samples: dict) -> dict:
    """:func:`measure`'s samples as JSON takes them: string keys, times rounded to 0.1 us."""
    def cell(c: dict) -> dict:
        return {k: ([round(float(x), 4) for x in v] if k in SAMPLE_KEYS else v) for k, v in c.items()}

    out: dict = {"_meta": samples["_meta"]} if "_meta" in samples else {}
    for vid, s in samples.items():
        if vid != "_meta":
            out[vid] = {"levels": {str(k): cell(c) for k, c in s["levels"].items()},
                        "quiet": {f"{r:g}": cell(c) for r, c in s.get("quiet", {}).items()}}
    return out


def samples_from_json(doc: dict) -> dict:
    """The samples :func:`samples_to_json` wrote, with their integer load levels and float rates again."""
    out: dict = {"_meta": doc["_meta"]} if "_meta" in doc else {}
    for vid, s in doc.items():
        if vid != "_meta":
            out[vid] = {"levels": {int(k): c for k, c in s["levels"].items()},
                        "quiet": {float(r): c for r, c in s.get("quiet", {}).items()}}
    return out


def levels_for(cores: int) -> list[int]:
    """The busy-process counts: 0, 1, 2 and 2 x cores (deduplicated, ascending)."""
    return sorted({0, 1, 2, 2 * cores})


def measure(files: dict[str, Path], shape: Sequence[int], *, threads: int = 1, levels: Sequence[int] | None = None,
            rounds: int = 2, calls: int = 200, rate_hz: float = 60.0, duration_s: float = 0.5,
            quiet_rates: Sequence[float] = (), seed: int = 0, progress: Callable[[int], None] | None = None,
            timeout_s: float = 1800) -> dict:
    """Samples per (variant, level): ``{vid: {level: {"b2b", "svc", "resp", "issued", "served"}}}`` (and
    ``"<key>_per_round"``: how many of each list's samples each round took, in order), and at level 0 also per
    extra rate in ``quiet_rates``: ``{vid: {"quiet": {rate: {...}}}}``."""
    cores = usable_cpus()  # the busy processes and the probes inherit this process's CPUs
    levels = list(levels if levels is not None else levels_for(cores))
    by_file = {str(f): vid for vid, f in files.items()}
    out: dict = {vid: {"levels": {}, "quiet": {}} for vid in files}

    def probe(rate: float, dur: float, n_calls: int, s: int) -> dict:
        cmd = [sys.executable, "-m", "adascale_rl.elastic.loadprobe", "--threads", str(threads),
               "--shape", ",".join(str(x) for x in shape), "--calls", str(n_calls), "--rate", f"{rate:g}",
               "--duration", f"{dur:g}", "--seed", str(s), *by_file]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if r.returncode != 0:
            raise RuntimeError(f"contention probe failed: {r.stderr.strip()[-800:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    for r in range(rounds):
        for i, level in enumerate(levels):
            with BusyProcesses(level):
                res = probe(rate_hz, duration_s, calls, seed * 1000 + r * 100 + i)
            for f, d in res.items():  # noting where each round's samples end
                add_cell(out[by_file[f]]["levels"], level, d, per_round=True)
            if progress is not None:
                progress(1)
        for rate in quiet_rates:
            res = probe(rate, duration_s, 1, seed * 1000 + r * 100 + 50 + int(rate))
            for f, d in res.items():  # the one back-to-back call of this probe is not a sample
                add_cell(out[by_file[f]]["quiet"], rate, d, keys=("svc", "resp"))
    out["_meta"] = {"levels": levels, "rounds": rounds, "calls": calls, "rate_hz": rate_hz, "duration_s": duration_s,
                    "threads": threads, "cores": cores, "quiet_rates": list(quiet_rates)}
    return out


def summarise(samples: dict, vid: str) -> dict:
    """One variant's contention curve, as the catalog stores it (``Variant.contention``)."""
    meta = samples["_meta"]
    levels = meta["levels"]
    cells = [samples[vid]["levels"][lv] for lv in levels]

    def stat(xs, f):
        return round(float(f(np.asarray(xs))), 4) if len(xs) else None

    return {
        "busy_processes": levels,
        "b2b_mean_ms": [stat(c["b2b"], np.mean) for c in cells],
        "b2b_p50_ms": [stat(c["b2b"], np.median) for c in cells],
        "b2b_p95_ms": [stat(c["b2b"], lambda a: np.percentile(a, 95)) for c in cells],
        "rate_hz": meta["rate_hz"],
        "mean_ms": [stat(c["resp"], np.mean) for c in cells],
        "p50_ms": [stat(c["resp"], np.median) for c in cells],
        "p95_ms": [stat(c["resp"], lambda a: np.percentile(a, 95)) for c in cells],
        "wake_wait_frac": [stat(np.asarray(c["resp"]) - np.asarray(c["svc"]) > WAKE_WAIT_MS, np.mean) for c in cells],
        "served_frac": [round(c["served"] / max(c["issued"], 1), 4) for c in cells],
        "method": (f"{meta['rounds']} interleaved rounds; per round and busy-process count, one fresh process at "
                   f"{meta['threads']} torch thread(s) times every variant {meta['calls']} times back to back "
                   f"(b2b_*) and serves requests arriving at {meta['rate_hz']:g} Hz for {meta['duration_s']:g} s "
                   f"(latest request first; mean/p50/p95 of the response time, arrival to result; wake_wait_frac: "
                   f"share of requests whose response exceeded the service by more than {WAKE_WAIT_MS} ms); busy "
                   f"processes: pure-Python loops in the same session (adascale_rl.context.load)"),
    }


# ---------------------------------------------------------------------------- the scheduler constants

def kernel_tick_ms() -> tuple[float | None, str]:
    """The scheduler tick from the running kernel's CONFIG_HZ, with where it was read, or None."""
    import gzip

    for path in ("/proc/config.gz", f"/boot/config-{platform.release()}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as fh:
                for line in fh:
                    if line.startswith("CONFIG_HZ="):
                        hz = int(line.split("=", 1)[1])
                        return 1000.0 / hz, f"measured on this host: CONFIG_HZ={hz} in {path}"
        except (OSError, ValueError):
            continue
    return None, "CONFIG_HZ not readable"


def eevdf_slice_ms(cores: int) -> tuple[float, str]:
    """The EEVDF base slice for this many CPUs: 0.75 ms x (1 + ilog2(min(cpus, 8)))."""
    factor = 1 + int(math.log2(max(1, min(cores, 8))))
    return 0.75 * factor, (f"Linux EEVDF base slice: sysctl_sched_base_slice 0.75 ms x (1 + ilog2({cores} CPUs)) = "
                           f"{0.75 * factor:g} ms (kernel/sched/fair.c, logarithmic tunable scaling)")


#: fitted values outside these ranges say the measurement was disturbed; they are not used (the wake-up cost's
#: bounds, from the live runs of 2026-12-02 on this VM, docs/LIVE.md: 2.5x the 2 ms a request at 60 Hz paid, and
#: 2.7x the 0.73 x service the live probe measured when its line, taken against the simulator's service at the
#: median speed, also carried the full model's speed above that median)
PLAUSIBLE = {"idle_wake_ms": (0.0, 5.0), "idle_wake_per_ms": (0.0, 2.0), "idle_sleep_ms": (0.1, 50.0),
             "wake_wait": (0.0, 1.5), "wake_lag_ms": (0.05, 5.0),
             "wake_cv": (0.0, 3.0),  # wake_cv: an assumption (the probes measured 0.03-0.93; 3 is a timing gone wrong)
             "corun_stretch": CORUN_STRETCH_RANGE}  # the preset's range
#: requests per (variant, busy-process count) a fit needs
MIN_SAMPLES = 20


def fit_idle_wake(latency_ms, excess_ms, weights=None) -> tuple[float, float, float]:
    """``(idle_wake_ms, idle_wake_per_ms, rms error)``: the least-squares line ``excess = idle_wake_ms +
    idle_wake_per_ms x latency`` through the wake-up costs ``excess_ms`` measured for variants of service
    ``latency_ms``, with neither coefficient negative (where the free fit makes one negative, the other is fitted
    alone). ``weights``: one per variant (e.g. 1 / the squared standard error of its excess), all 1 by default;
    the rms error is weighted alike."""
    lat, excess = np.asarray(latency_ms, dtype=float), np.asarray(excess_ms, dtype=float)
    w = np.ones_like(lat) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != lat.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be one finite number >= 0 per variant, not all 0: {weights!r}")
    r = np.sqrt(w)
    (w0, w1), *_ = np.linalg.lstsq(np.vstack([r, r * lat]).T, r * excess, rcond=None)
    if w1 < 0.0:
        w0, w1 = float(np.dot(w, excess) / w.sum()), 0.0
    elif w0 < 0.0:
        w0, w1 = 0.0, float(np.dot(w * lat, excess) / max(float(np.dot(w * lat, lat)), 1e-12))
    w0, w1 = max(float(w0), 0.0), max(float(w1), 0.0)
    return w0, w1, float(np.sqrt(np.dot(w, (w0 + w1 * lat - excess) ** 2) / w.sum()))


#: no variant's wake-up excess is known better than this (ms), whatever its samples say (the weights' floor)
EXCESS_SE_FLOOR_MS = 0.01


def sleeps_between(world_ms: float, rate_hz: float) -> bool:
    """Whether a variant of service ``world_ms`` sleeps long enough between requests at ``rate_hz`` for its wake-up
    cost to be measured: at least half the time between them."""
    return world_ms <= 500.0 / rate_hz


def sleep_share(world_ms: float, rate_hz: float, idle_sleep_ms: float) -> float:
    """The share of the full wake-up cost the model gives a variant of service ``world_ms`` that sleeps between
    requests at ``rate_hz``: ``1 - exp(-sleep / idle_sleep_ms)`` (:func:`adascale_rl.device.model.contention`)."""
    return 1.0 - math.exp(-(1000.0 / rate_hz - world_ms) / idle_sleep_ms)


def wake_excess(world_ms: float, responses_ms, rate_hz: float, idle_sleep_ms: float) -> tuple[float, float] | None:
    """One variant's full wake-up cost from requests served at ``rate_hz`` with the thread asleep in between:
    (excess, its standard error), the mean response over ``world_ms`` (the service the simulator's world gives the
    variant) divided by :func:`sleep_share`; None where the variant hardly sleeps (service over half the time
    between requests) or has fewer than 2 responses."""
    resp = np.asarray(responses_ms, dtype=float)
    if not sleeps_between(world_ms, rate_hz) or resp.size < 2:
        return None
    share = sleep_share(world_ms, rate_hz, idle_sleep_ms)
    return (float(resp.mean()) - world_ms) / share, math.sqrt(float(np.var(resp, ddof=1)) / resp.size) / share


def fit_wake_line(world_ms: dict[str, float], excess_ms: dict[str, float],
                  excess_se_ms: dict[str, float]) -> dict[str, float | None]:
    """The line ``idle_wake_ms + idle_wake_per_ms x service`` through the variants' wake-up excesses
    (:func:`wake_excess`; ``world_ms``: their service in the world), each weighted by 1 / its squared standard
    error: ``{idle_wake_ms, idle_wake_per_ms, rms_ms}``, all None with fewer than 2 variants, and the coefficients
    None (the rms and the refused line kept as ``refused``) where they fall outside :data:`PLAUSIBLE`."""
    vids = list(excess_ms)
    out: dict[str, Any] = {"idle_wake_ms": None, "idle_wake_per_ms": None, "rms_ms": None}
    if len(vids) < 2:
        return out
    w0, w1, rms = fit_idle_wake([world_ms[v] for v in vids], [excess_ms[v] for v in vids],
                                [1.0 / max(excess_se_ms[v], EXCESS_SE_FLOOR_MS) ** 2 for v in vids])
    out["rms_ms"] = round(rms, 4)
    if all(PLAUSIBLE[k][0] <= w <= PLAUSIBLE[k][1] for k, w in (("idle_wake_ms", w0), ("idle_wake_per_ms", w1))):
        out.update(idle_wake_ms=round(w0, 4), idle_wake_per_ms=round(w1, 4))
    else:
        out["refused"] = [round(w0, 4), round(w1, 4)]
    return out


#: the largest standard error a variant's wake-up factor may have to stand for the variant (:func:`wake_factors`;
#: an assumption: a factor less sure than a quarter of the line's cost is taken to tell the replay less than the
#: line does. On the Intel VM's 60 Hz probes every measured factor passed it; at 400 Hz, 24 requests of a
#: variant that hardly sleeps left some variants on the line, docs/LIVE.md "Per-variant wake-up costs")
WAKE_FACTOR_MAX_SE = 0.25


def wake_factors(line: dict[str, Any], world_ms: dict[str, float], excess_ms: dict[str, float],
                 excess_se_ms: dict[str, float]) -> dict[str, float]:
    """Each measured variant's wake-up cost over the cost the fitted ``line`` (:func:`fit_wake_line`'s
    ``idle_wake_ms`` and ``idle_wake_per_ms``) gives its service ``world_ms``: ``excess / line``, for the variants
    whose factor's standard error (``excess_se / line``) is at most :data:`WAKE_FACTOR_MAX_SE`; ``{}`` without a
    line. The line is what the model holds for every variant; the factors are where a host's variants wake up off
    it (the world of a replay, ``VariantTable.on_host``'s ``wake_scale``)."""
    w0, w1 = line.get("idle_wake_ms"), line.get("idle_wake_per_ms")
    if w0 is None or w1 is None:
        return {}
    out = {}
    for v, e in excess_ms.items():
        cost = w0 + w1 * world_ms[v] if v in world_ms else 0.0
        if cost > 0.0 and v in excess_se_ms and excess_se_ms[v] / cost <= WAKE_FACTOR_MAX_SE:
            out[v] = float(e) / cost
    return out


def wake_spread(responses_ms, service_ms) -> float | None:
    """The standard deviation of one variant's wake-up cost: what the responses of a sleeping app spread beyond its
    back-to-back service, ``sqrt(max(0, var(responses) - var(service)))`` (ms; None with fewer than 2 of either or a
    value that is not finite)."""
    resp, svc = np.asarray(responses_ms, dtype=float), np.asarray(service_ms, dtype=float)
    if resp.size < 2 or svc.size < 2:
        return None
    extra = float(np.var(resp, ddof=1)) - float(np.var(svc, ddof=1))
    return math.sqrt(max(0.0, extra)) if math.isfinite(extra) else None


def line_cost(idle_wake_ms: float, idle_wake_per_ms: float, world_ms: dict[str, float], rate_hz: float,
              idle_sleep_ms: float, wake_scale: dict[str, float] | None = None) -> dict[str, float]:
    """The wake-up cost the model gives each variant of service ``world_ms`` that sleeps between requests at
    ``rate_hz``: the line ``idle_wake_ms + idle_wake_per_ms x service`` times its :func:`sleep_share` (variants
    that hardly sleep, :func:`sleeps_between`, are left out), and times its own factor over the line where
    ``wake_scale`` names one (a world's, :func:`variant_wake_scales`)."""
    scale = wake_scale or {}
    return {v: (idle_wake_ms + idle_wake_per_ms * w) * sleep_share(w, rate_hz, idle_sleep_ms) * scale.get(v, 1.0)
            for v, w in world_ms.items() if sleeps_between(w, rate_hz)}


def fit_wake_cv(cost_ms: dict[str, float], spread_ms: dict[str, float]) -> dict[str, float | None]:
    """The wake-up cost's standard deviation over its mean (the model's ``wake_cv``: a request's wake-up cost spreads
    by ``wake_cv`` x the cost the model gives it): the least-squares line through the origin of the variants'
    measured spreads (:func:`wake_spread`) on ``cost_ms``, the cost the model gives each (the fitted line times
    its sleep share). ``{wake_cv, rms_ms}``, both None with no variant of positive cost, ``wake_cv`` None (the
    refused value kept as ``refused``) outside :data:`PLAUSIBLE`."""
    vids = [v for v in spread_ms if v in cost_ms and cost_ms[v] > 0.0 and math.isfinite(spread_ms[v])]
    out: dict[str, Any] = {"wake_cv": None, "rms_ms": None}
    if not vids:
        return out
    c = np.array([cost_ms[v] for v in vids])
    sd = np.array([spread_ms[v] for v in vids])
    cv = float(np.dot(c, sd) / np.dot(c, c))
    out["rms_ms"] = round(float(np.sqrt(np.mean((cv * c - sd) ** 2))), 4)
    lo, hi = PLAUSIBLE["wake_cv"]
    if lo <= cv <= hi:
        out["wake_cv"] = round(cv, 4)
    else:
        out["refused"] = round(cv, 4)
    return out


def fit_wake(world_ms: dict[str, float], responses_ms: dict[str, Sequence[float]], b2b_ms: dict[str, Sequence[float]],
             rate_hz: float, idle_sleep_ms: float) -> dict[str, Any]:
    """A host's wake-up cost from requests served at ``rate_hz`` with the thread asleep in between (``responses_ms``
    per variant) and the same variants back to back (``b2b_ms``), against ``world_ms``, the service the simulated
    world gives each: each variant's excess and its standard error (:func:`wake_excess`), its spread
    (:func:`wake_spread`), the weighted line through the excesses (:func:`fit_wake_line`) and, where the line is
    plausible, ``wake_cv`` with its rms error (:func:`fit_wake_cv` on :func:`line_cost`; a refused value kept as
    ``wake_cv_refused``). What the live probe and ``benchmarks/contention.py --wake measured`` both measure."""
    excess, se, spread = {}, {}, {}
    for v, world in world_ms.items():
        measured = wake_excess(world, responses_ms[v], rate_hz, idle_sleep_ms) if v in responses_ms else None
        if measured is None:
            continue
        excess[v], se[v] = measured
        sd = wake_spread(responses_ms[v], b2b_ms[v]) if v in b2b_ms else None
        if sd is not None:
            spread[v] = sd
    out: dict[str, Any] = {"excess_ms": excess, "excess_se_ms": se, "spread_ms": spread,
                           **fit_wake_line(world_ms, excess, se)}
    if spread and out["idle_wake_ms"] is not None:
        cv = fit_wake_cv(line_cost(out["idle_wake_ms"], out["idle_wake_per_ms"], {v: world_ms[v] for v in spread},
                                   rate_hz, idle_sleep_ms), spread)
        out["wake_cv"], out["wake_cv_rms_ms"] = cv["wake_cv"], cv["rms_ms"]
        if "refused" in cv:  # implausible: not used, but kept
            out["wake_cv_refused"] = cv["refused"]
    return out


#: operator names that are a variant's numeric precision (``variant_speeds`` groups variants by it)
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")


def variant_speeds(ratios: dict[str, float], catalog: Any) -> dict[str, float]:
    """Every variant's service over its catalog latency, from the variants a probe timed back to back (``ratios``:
    variant id -> measured / catalog). A host does not speed its variants up evenly (on the reference VM an int8
    variant's ratio was 1.57-1.70 while the largest fp32 one's was 0.72-0.77 over the 15 probes of one benchmark,
    docs/LIVE.md), so a variant the probe did not time takes the ratio of those of its own precision
    (:func:`by_precision`); a ratio outside the range a preset's ``service_scale`` may take is left out."""
    from adascale_rl.device.presets import SERVICE_SCALE_RANGE

    return by_precision(ratios, catalog, SERVICE_SCALE_RANGE)  # a ratio a host cannot run at: a timing gone wrong


def variant_wake_scales(factors: dict[str, float], catalog: Any) -> dict[str, float]:
    """Every variant's wake-up cost over the scheduler's line, from the variants a probe measured (``factors``:
    variant id -> measured excess / the line's cost, :func:`wake_factors`): a variant the probe did not measure
    takes the factor of those of its own precision (:func:`by_precision`; on the Intel VM the line through six
    variants missed single variants by factors of 0.58-1.87, docs/LIVE.md); a factor outside
    :data:`adascale_rl.device.model.WAKE_SCALE_RANGE` is left out."""
    from adascale_rl.device.model import WAKE_SCALE_RANGE

    return by_precision(factors, catalog, WAKE_SCALE_RANGE)


def by_precision(values: dict[str, float], catalog: Any, bounds: tuple[float, float]) -> dict[str, float]:
    """A per-variant quantity measured on some variants (``values``: variant id -> value), for every variant of
    ``catalog``: a measured variant keeps its own; another takes the values of the measured variants of its own
    precision (the one of :data:`PRECISIONS` among its ``operators``, fp32 where none is named), interpolated
    linearly in log catalog latency and held at the ends; where no variant of its precision was measured, of all
    the measured ones. Values that are not finite or lie outside ``bounds`` are left out; ``{}`` if none is left."""
    lo, hi = bounds
    timed = {v: float(r) for v, r in values.items() if v in catalog.ids and math.isfinite(r) and lo <= r <= hi}
    if not timed:
        return {}

    def family(v) -> str:
        return next((op for op in v.operators if op in PRECISIONS), "fp32")

    # per precision (and None: all measured variants), the measured variants' (log latency, value) in latency order
    points: dict[str | None, list[tuple[float, float]]] = {}
    for v in catalog.variants:
        if v.id in timed:
            for key in (family(v), None):
                points.setdefault(key, []).append((math.log(v.latency_ms), timed[v.id]))
    for pts in points.values():
        pts.sort()
    out = {}
    for v in catalog.variants:
        pts = points.get(family(v)) or points[None]
        out[v.id] = timed[v.id] if v.id in timed else float(np.interp(math.log(v.latency_ms), *zip(*pts)))
    return out


def corun_levels(levels: Sequence[int], cores: int, threads: int) -> list[int]:
    """The busy-process counts of ``levels`` that leave the app's ``threads`` their cores (``0 < busy <= cores -
    threads``): where a slow-down is co-running alone, nothing time-shared (:func:`fit_corun` reads these)."""
    return [lv for lv in levels if 0 < lv <= cores - threads]


def fit_corun(samples: dict, cores: int, threads: int, variants: Sequence[str] | None = None
              ) -> tuple[float, str] | None:
    """``(corun_stretch, how)``: how much longer the back-to-back service gets beside busy processes that leave the
    app's threads their cores (the levels ``0 < busy <= cores - threads``, where nothing time-shares a core), per
    share of the free cores they keep busy: the median over (variant, level) of ``(mean at the level / mean with
    no busy process - 1) / (busy / (cores - threads))`` (:func:`adascale_rl.device.model.corun_ms`); held at 0 when
    that median is negative (none beyond the noise). None where no level qualifies (the app's threads fill every
    core, or the samples hold no such level) or no variant has :data:`MIN_SAMPLES` calls at both."""
    free = cores - threads
    levels = corun_levels(samples["_meta"]["levels"], cores, threads)
    vids = [v for v in (variants or samples) if v != "_meta" and v in samples]
    ratios = []
    for v in vids:
        quiet = samples[v]["levels"].get(0, {}).get("b2b", [])
        for lv in levels:
            loaded = samples[v]["levels"].get(lv, {}).get("b2b", [])
            if len(quiet) >= MIN_SAMPLES and len(loaded) >= MIN_SAMPLES:
                ratios.append((float(np.mean(loaded)) / float(np.mean(quiet)) - 1.0) / (lv / free))
    if not ratios:
        return None
    med = float(np.median(ratios))
    how = (f"median over {len(ratios)} (variant, busy-process count) pairs with busy processes that leave the app's "
           f"{threads:g} thread(s) their cores ({', '.join(map(str, levels))} of {cores} cores) of (mean back-to-back "
           f"service beside them / with none - 1) / (busy / {free:g}): {med:.4f} (range {min(ratios):.3f}-"
           f"{max(ratios):.3f})")
    if med < 0.0:
        return 0.0, how + "; held at 0 (negative: no lengthening beyond the noise)"
    return round(med, 4), how


def fit_scheduler(samples: dict, latency_ms: dict[str, float], cores: int, threads: int) -> dict:
    """Fit the idle wake-up (``idle_wake_ms``, ``idle_wake_per_ms``, ``idle_sleep_ms``, its spread ``wake_cv``), the wake-up wait
    (``wake_wait``, ``wake_lag_ms``) and the co-runners' lengthening of the service (``corun_stretch``,
    :func:`fit_corun`) of :class:`adascale_rl.device.model.Scheduler` to measured samples.

    ``latency_ms``: each variant's isolated latency (the catalog's). Returns
    ``{name: (value, how it was fitted)}`` for the constants the samples determine well enough:
    cells with fewer than :data:`MIN_SAMPLES` requests are left out, and a fitted value outside
    :data:`PLAUSIBLE` is dropped (the caller keeps a documented default).
    """
    out = _fit(samples, latency_ms, cores, threads)
    return {k: v for k, v in out.items() if PLAUSIBLE[k][0] <= v[0] <= PLAUSIBLE[k][1]}


def _fit(samples: dict, latency_ms: dict[str, float], cores: int, threads: int) -> dict:
    meta = samples["_meta"]
    rate = float(meta["rate_hz"])
    vids = [v for v in latency_ms if v in samples and len(samples[v]["levels"][0]["resp"]) >= MIN_SAMPLES]
    if len(vids) < 2:
        return {}
    lat = np.array([latency_ms[v] for v in vids])
    # idle wake-up at the main rate (long sleeps): excess of the response over the back-to-back service
    quiet = [samples[v]["levels"][0] for v in vids]
    excess = np.array([np.mean(c["resp"]) - np.mean(c["b2b"]) for c in quiet])
    w0, w1, rms0 = fit_idle_wake(lat, excess)
    held = "idle_wake_ms" if w0 == 0.0 else "idle_wake_per_ms" if w1 == 0.0 else None
    out = {
        "idle_wake_ms": (round(w0, 4), f"least-squares fit of (mean response at {rate:g} Hz - mean back-to-back "
                                       f"service) = idle_wake_ms + idle_wake_per_ms x latency over {len(vids)} "
                                       f"variants with no busy process (rms error {rms0:.3f} ms)"
                                       + (f"; {held} held at 0 (the free fit made it negative)" if held else "")),
        "idle_wake_per_ms": (round(w1, 4), "fitted with idle_wake_ms"),
    }
    # the idle wake-up at shorter sleeps: excess / full excess = 1 - exp(-sleep / idle_sleep_ms)
    ratios, sleeps = [], []
    for r in meta.get("quiet_rates", []):
        for v, l in zip(vids, lat):
            c = samples[v]["quiet"].get(r) or samples[v]["quiet"].get(str(r))
            full = w0 + w1 * l
            if not c or len(c["resp"]) < MIN_SAMPLES or full <= 0.05:
                continue
            e = (np.mean(c["resp"]) - np.mean(samples[v]["levels"][0]["b2b"])) / full
            sleep = 1000.0 / r - l
            if 0.02 < e < 0.98 and sleep > 0:
                ratios.append(e)
                sleeps.append(sleep)
    if ratios:
        taus = -np.asarray(sleeps) / np.log(1.0 - np.asarray(ratios))
        tau = float(np.median(taus))
        out["idle_sleep_ms"] = (round(tau, 3), f"median over {len(taus)} (variant, rate) pairs at "
                                               f"{', '.join(f'{r:g}' for r in meta['quiet_rates'])} Hz of "
                                               f"-sleep / ln(1 - excess / excess at {rate:g} Hz)")
    # how far the wake-up cost spreads: what the responses spread beyond the service, over the cost the line gives
    # each variant that sleeps between requests (as the live probe takes it)
    from adascale_rl.device.model import Scheduler

    tau = out["idle_sleep_ms"][0] if "idle_sleep_ms" in out else Scheduler().idle_sleep_ms
    spread = {v: wake_spread(c["resp"], c["b2b"]) for v, c in zip(vids, quiet)}
    cost = line_cost(w0, w1, {v: float(l) for v, l in zip(vids, lat)}, rate, tau)
    cv = fit_wake_cv(cost, {v: x for v, x in spread.items() if x is not None})
    if cv["wake_cv"] is not None:
        out["wake_cv"] = (cv["wake_cv"], f"least-squares ratio through the origin of sqrt(var(response at {rate:g} Hz) "
                                         f"- var(back-to-back service)) to the cost the fitted line gives (times the "
                                         f"share a sleep that long gets, idle_sleep_ms {tau:g}) over the variants that "
                                         f"sleep between requests, no busy process (rms error {cv['rms_ms']:.3f} ms)")
    # the wake-up wait: share of requests waiting for a core at wake-up, where the cores are oversubscribed
    pts = []
    for lv in meta["levels"]:
        over = (lv + threads) / cores - 1.0
        if over <= 0:
            continue
        for v, l in zip(vids, lat):
            c = samples[v]["levels"][lv]
            if len(c["resp"]) < MIN_SAMPLES or l * rate / 1000.0 >= 1.0 / (1.0 + over):  # saturated: no sleeps
                continue
            q = float(np.mean(np.asarray(c["resp"]) - np.asarray(c["svc"]) > WAKE_WAIT_MS))
            pts.append((over, l, q, len(c["resp"])))
    if pts:
        over, l, q, n = (np.array(x, dtype=float) for x in zip(*pts))
        best = None
        for kappa in np.linspace(0.02, 1.5, 75):
            for lag in np.exp(np.linspace(math.log(0.05), math.log(5.0), 60)):
                pred = np.minimum(1.0, kappa * over) * (1.0 - np.exp(-l / lag))
                err = float(np.sum(n * (pred - q) ** 2) / np.sum(n))
                if best is None or err < best[0]:
                    best = (err, kappa, lag)
        err, kappa, lag = best
        out["wake_wait"] = (round(float(kappa), 4), f"weighted least-squares fit of the share of requests waiting "
                                                    f"more than {WAKE_WAIT_MS} ms at wake-up, q = min(1, wake_wait x m) "
                                                    f"x (1 - exp(-latency / wake_lag_ms)), m = extra runnable threads "
                                                    f"per core, over {len(pts)} (variant, busy-process count) points "
                                                    f"at {rate:g} Hz (rms error {math.sqrt(err):.3f})")
        out["wake_lag_ms"] = (round(float(lag), 4), "fitted with wake_wait")
    corun = fit_corun(samples, cores, threads, vids)
    if corun is not None:
        out["corun_stretch"] = corun
    return out
