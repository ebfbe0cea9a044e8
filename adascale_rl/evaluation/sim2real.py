"""Sim-to-real: the simulator held against live runs on the real model.

``adascale-rl sim2real LIVE_DIR`` (and the end of every ``adascale-rl bench --live``) takes the logs of
live runs (``adascale-rl run`` folders, or a ``bench --live`` folder with ``runs/``) and asks the simulator
two questions about each:

* **What does the simulator predict for this controller in this context?** The run's monitored context
  (``context.csv``: the background load, run queue, memory and the app's mode the monitor read, one row
  per period) is replayed as a trace in the environment's simulator, with the very controller that ran
  (its exported folder: the same network or the same tuned heuristic, deciding on the simulator's
  observations) and the variant it started with, over ``seeds`` latency-noise draws. Its return, miss
  rate, mean latency and effective accuracy stand beside the live ones, and each controller's rank in
  each.
* **How well does the performance model predict each period's latency?** For every live period that
  served a request: the model's expected mean response time of the variant that ran, under the context
  measured in that period (clock, run queue, request rate; the prediction the selector's slow-down feature
  divides by) against the measured mean response time, and the model's expected on-time share against the
  measured one.

Live metrics here are per-period means (the miss rate is the mean over periods of the share of the
period's requests that missed), as the simulator's are, so that both sides are averaged alike; the
``bench --live`` table weights by requests instead. Energy is an estimate on both sides (no power counter).

Written: ``sim2real.csv`` (one row per controller), ``sim2real_runs.csv`` (one per run),
``sim2real_intervals.csv`` (one per live period with its prediction) and ``sim2real.md``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from adascale_rl.elastic.contention import variant_speeds, variant_wake_scales
from adascale_rl.evaluation.core import ci95
from adascale_rl.policies.base import BasePolicy
from adascale_rl.policies.rollout import episode_seed, run_episode

#: per controller, in this order (sim2real.csv)
COLUMNS = ("policy", "kind", "runs", "live_return", "live_ci95_return", "sim_return", "sim_ci95_return",
           "return_gap_pct", "live_rank", "sim_rank", "live_miss_rate", "sim_miss_rate", "live_mean_latency_ms",
           "sim_mean_latency_ms", "live_effective_accuracy", "sim_effective_accuracy", "live_energy_j_estimate",
           "sim_energy_j", "live_switches", "sim_switches", "latency_err_median_pct", "latency_err_p90_pct",
           "latency_bias_median_pct", "intervals", "return_gap_ci95_pct", "latency_noise_median_pct",
           "latency_hindsight_median_pct")

#: per live period (sim2real_intervals.csv)
INTERVAL_COLUMNS = ("run", "policy", "t_s", "segment", "busy", "memory_mb", "request_rate_hz", "deadline_ms",
                    "bg_runnable", "freq_mhz", "variant", "served", "measured_latency_ms", "predicted_latency_ms",
                    "latency_err_pct", "measured_latency_se_ms", "measured_on_time_frac", "predicted_on_time_frac")

#: the median of |N(0, 1)|: an exact model's median absolute error, in standard errors of the measured mean
HALF_NORMAL_MEDIAN = 0.6744897501960817


#: where a replay's host speed comes from (:func:`replay_run`): each variant at the speed and wake-up cost the run's
#: probe measured (interpolated for those it did not time), the same with every variant's wake-up cost on the
#: probe's line, every variant at the probe's median speed (wake-up cost on the line), or the spec's
HOST_SPEEDS = ("run", "run-line", "run-median", "spec")


class Sim2RealError(ValueError):
    """Logs that cannot be compared; the message says what is missing."""


class ExportedPolicy(BasePolicy):
    """An exported controller folder (``adascale-rl export``) acting in the simulator: the network's numpy
    forward or the named heuristic with its tuned parameters, deciding on the environment's observation
    and action mask exactly as the on-device selector decides on its own."""

    def __init__(self, folder: str | Path, name: str | None = None):
        from adascale_rl.runtime import schema
        from adascale_rl.runtime.folder import read_document

        self.folder = Path(folder)
        self.doc = schema.validate(read_document(self.folder))
        self.kind = "heuristic" if self.doc["policy"]["kind"] == "heuristic" else "learned"
        self.name = name or self.folder.name
        self._decide = None
        self._info: dict = {}

    def reset(self, env: Any) -> None:
        from adascale_rl.runtime.folder import heuristic, network

        from adascale_rl.environment.spec import env_name

        # another version of the same environment is replayed in the current dynamics (the observation's layout is
        # the encoder's, which ``network`` checks; a network whose decisions moved with the version fails its own
        # check decisions there)
        if env_name(self.doc["env"]["id"]) != env.env_spec.name:
            raise Sim2RealError(f"{self.folder} was exported for {self.doc['env']['id']}, not {env.env_spec.id}")
        if self.doc["policy"]["kind"] == "heuristic":
            # what the heuristic knows is the exported folder's (as on the device), not the replaying simulator's:
            # a spec recalibrated since (adascale-rl calibrate) changes the world, not the controller
            self._decide = heuristic(self.doc["policy"], self._view(env), lambda: self._info)
        elif self._decide is None:  # the network is stateless: checked and compiled once

            def warn(key, message, fallback=True):
                raise Sim2RealError(f"{self.folder}: {message}")

            self._decide, _, _ = network(self.folder, self.doc, env.encoder.size, env.action_space.n, "numpy", warn)

    def _view(self, env: Any) -> Any:
        """The selector's view of its environment, from selector.json (catalog, device, reward, period), with the
        simulator's observation encoder (the layouts agree: ``network`` checks it for networks, the environment
        id for heuristics; sim2real checks the catalogs agree)."""
        from adascale_rl.device.presets import parse_preset
        from adascale_rl.runtime.folder import catalog_of, heuristic_view

        device = parse_preset(self.doc["device"], "selector.json device")
        return heuristic_view(self.doc, catalog_of(self.doc), device, env.encoder)

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        self._info = info
        return int(self._decide(np.asarray(obs, dtype=np.float32), np.asarray(info["action_mask"], dtype=bool))[0])


def live_runs(folder: str | Path) -> list[Path]:
    """The run folders under ``folder``: itself (an ``adascale-rl run`` folder) or ``runs/*`` (``bench --live``)."""
    folder = Path(folder)
    if (folder / "summary.json").is_file():
        return [folder]
    runs = sorted(p.parent for p in (folder / "runs").glob("*/summary.json")
                  if not json.loads(p.read_text()).get("interrupted"))  # bench --live tables only finished runs
    if not runs:
        raise Sim2RealError(f"{folder} holds no live run: neither a summary.json (adascale-rl run --out) nor "
                            f"runs/*/summary.json (adascale-rl bench --live --out)")
    return runs


def _read_intervals(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def interval_standard_errors(run: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """Per period of ``intervals.csv``, the standard error (ms) of its measured mean response time, from the
    run's ``requests.npz``: the sample standard deviation of the period's served requests over the square root of
    their count (NaN where the period served fewer than two, or the run has no requests.npz). A request belongs to
    the period in which it started (the live loop's rule: a period's ``t_s`` is the boundary its decision was
    made at, and a request that starts after it is served by that period's variant). Requests of one period
    are not independent (a preemption delays the ones queued behind it), so this is a lower bound of the
    sampling noise."""
    out = np.full(len(rows), math.nan)
    path = run / "requests.npz"
    if not path.is_file() or not rows:
        return out
    try:
        with np.load(path, allow_pickle=False) as z:
            arrival, start, end, dropped = (np.asarray(z[k]) for k in ("arrival_s", "start_s", "end_s", "dropped"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # unreadable: no sampling noise, the rest stands
        return out
    keep = ~dropped.astype(bool) & np.isfinite(start) & np.isfinite(end)
    latency = (end[keep] - arrival[keep]) * 1000.0
    k = np.searchsorted(np.array([float(r["t_s"]) for r in rows]), start[keep], side="right") - 1
    inside = k >= 0  # a request before the first period belongs to none
    k, latency = k[inside], latency[inside]
    n = np.bincount(k, minlength=len(rows)).astype(float)
    mean = np.bincount(k, weights=latency, minlength=len(rows)) / np.maximum(n, 1.0)
    ss = np.bincount(k, weights=(latency - mean[k]) ** 2, minlength=len(rows))
    many = n >= 2
    out[many] = np.sqrt(ss[many] / (n[many] - 1.0) / n[many])
    return out


def hindsight_errors(periods: list[dict]) -> np.ndarray:
    """Per period (percent): the error of a predictor that knew, in hindsight, the mean measured latency of every
    other period with the same load segment and variant (over all the runs given, leave-one-out; NaN for a
    period alone in its group). What is left is the latency's variation between periods of the same schedule
    segment and variant (host drift, the run queue's own swings, sampling). A model that reads only what the
    schedule sets cannot do better; the performance model also reads each period's measured run queue and clock,
    so it could, but an error well above this floor is the model's."""
    groups: dict[tuple, list[int]] = {}
    meas = np.array([p["measured_latency_ms"] for p in periods], dtype=float)
    for i, p in enumerate(periods):
        if math.isfinite(meas[i]) and meas[i] > 0 and p["served"]:
            groups.setdefault((p["segment"], p["variant"]), []).append(i)
    out = np.full(len(periods), math.nan)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        m = meas[idx]
        others = (m.sum() - m) / (len(idx) - 1)
        out[idx] = 100.0 * (others / m - 1.0)
    return out


def _num(v: str) -> float:
    return float(v) if v not in ("", None) else math.nan


def _selector_folder(run: Path, summary: dict) -> Path:
    """The exported controller a run used: the folder its summary names, else ``selector/`` beside it, else the
    ``bench --live`` layout (``selectors/<policy>/`` two levels up)."""
    for cand in (Path(summary.get("selector_folder", "")), run / "selector",
                 run.parent.parent / "selectors" / str(summary.get("policy", "")).replace("/", "_")):
        if str(cand) not in ("", ".") and (cand / "selector.json").is_file():
            return cand
    raise Sim2RealError(f"{run}: the exported controller it ran is gone ({summary.get('selector_folder')})")


#: the wake-up cost's constants a live run's probe measures (``LiveSetup.host_speed``'s ``wake``), and the sleep
#: curve it measured them with (the replay's world takes it too, so that the world wakes as measured)
WAKE_KEYS = ("idle_wake_ms", "idle_wake_per_ms")
WAKE_CURVE = "idle_sleep_ms"
#: how far the wake-up cost spreads (over its mean), which probes since 2026-12-02 measure too
WAKE_SPREAD = "wake_cv"


def _probed_wake(measured: dict, world_ms: dict[str, float], speed: float | None, catalog: Any,
                 per_variant: bool) -> tuple[dict[str, float], dict[str, float], int]:
    """The world's wake-up constants from a run's probe (its ``host_speed.wake``): the line fitted again on its
    measurements with the current rule (:func:`~adascale_rl.elastic.contention.fit_wake_line`), each variant's
    excess taken against ``world_ms``, the service the replay's world gives it: the mean response the probe
    measured stays, the excess and its standard error are worked out again against the replay's service. The
    line it recorded where it has no excesses (the probe's first form); ``{}`` where there is none. Where the
    probe measured the cost's spread (``spread_ms``), its ``wake_cv`` against the cost the refitted line gives
    (:func:`~adascale_rl.elastic.contention.fit_wake_cv`); else the spec's stays. With ``per_variant``, second,
    every variant's wake-up cost over that line (:func:`~adascale_rl.elastic.contention.wake_factors` for the
    variants the probe measured well enough, :func:`~adascale_rl.elastic.contention.variant_wake_scales` for the
    others; ``{}`` for a probe that recorded no excesses), and the ``wake_cv`` is then fitted against the cost the
    world gives each variant, its factor times the line's; third, how many measured factors stand."""
    from adascale_rl.elastic.contention import (fit_wake_cv, fit_wake_line, line_cost, sleep_share, sleeps_between,
                                                wake_factors)

    catalog_ms = {v.id: float(v.latency_ms) for v in catalog.variants}
    fit = measured
    factors: dict[str, float] = {}
    if world_ms and speed is not None and measured.get("excess_se_ms"):
        rate, tau = float(measured["rate_hz"]), float(measured["idle_sleep_ms"])

        def share(w: float) -> float:
            return sleep_share(w, rate, tau)

        # the service each excess was taken against: recorded by the probe since every variant is timed (its own
        # back-to-back service); before, the catalog's latency x the probes' median. Runs of the first per-variant
        # probe did not record it: there the median's stands in, which moves only the standard error's rescaling
        # (the share of the cost a 60 Hz sleep gets is 0.97-0.99 for any of these services)
        then_ms = measured.get("world_ms") or {}
        responses = measured.get("response_ms") or {}
        excess, se = {}, {}
        for v, e in measured.get("excess_ms", {}).items():
            if v not in world_ms or v not in catalog_ms or v not in measured["excess_se_ms"]:
                continue
            then = float(then_ms.get(v, speed * catalog_ms[v]))
            if not (sleeps_between(world_ms[v], rate) and sleeps_between(then, rate)):
                continue
            # the mean response it measured (recorded since the probe's second form; else from the excess)
            response = float(responses[v]) if v in responses else then + float(e) * share(then)
            excess[v] = (response - world_ms[v]) / share(world_ms[v])
            se[v] = float(measured["excess_se_ms"][v]) * share(then) / share(world_ms[v])
        fit = fit_wake_line(world_ms, excess, se)
        factors = wake_factors(fit, world_ms, excess, se)
    wake = {k: fit.get(k) for k in WAKE_KEYS}
    if None in wake.values():
        return {}, {}, 0
    scales = variant_wake_scales(factors, catalog) if per_variant else {}
    kept = sum(1 for v, f in factors.items() if scales.get(v) == f)
    if measured.get(WAKE_CURVE) is not None:
        wake[WAKE_CURVE] = measured[WAKE_CURVE]
    spread = measured.get("spread_ms") or {}
    if spread and world_ms and measured.get("rate_hz") and measured.get(WAKE_CURVE) is not None:
        cost = line_cost(wake["idle_wake_ms"], wake["idle_wake_per_ms"], {v: world_ms[v] for v in spread if v in world_ms},
                         float(measured["rate_hz"]), float(measured[WAKE_CURVE]), scales)  # the world's cost of each
        cv = fit_wake_cv(cost, {v: float(x) for v, x in spread.items()})["wake_cv"]
        if cv is not None:
            wake[WAKE_SPREAD] = cv
    return wake, scales, kept


def _spec_of(summary: dict) -> str:
    """The environment spec a run names: the file it ran (``env_spec``, an absolute path) where it still exists,
    else its environment's name (a run whose checkout moved, or that was copied from another machine): the
    current version of it, as the file is (a run of an earlier version of the dynamics is replayed in the current
    ones; the report says so)."""
    from adascale_rl.environment.spec import env_name

    path = summary.get("env_spec")
    return path if path and Path(path).is_file() else env_name(summary["env"])


def _policy_name(run: Path, summary: dict) -> str:
    if "policy" in summary:
        return str(summary["policy"])
    if run.parent.name == "runs" and "-" in run.name:  # bench --live's runs/<round>-<policy>/
        return run.name.split("-", 1)[1]
    return str(summary.get("controller", run.name))


def replay_run(run: Path, *, seeds: int = 5, env_kwargs: Mapping[str, Any] | None = None, env: str | None = None,
               host_speed: str = "run") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One live run against the simulator: (its row of sim2real_runs.csv, its periods with their predictions).
    ``env_kwargs``: the simulator's arguments for the replay (e.g. its latency noise); ``env``: a spec of the
    run's environment to replay in instead of the one the run names (e.g. recalibrated). ``host_speed``: "run"
    serves the replay's world at the host speed the run measured before it started (its summary's
    ``host_speed``, ``adascale-rl run``'s probe; the spec's where a run has none), each variant at the ratio the
    probe timed for it (:func:`~adascale_rl.elastic.contention.variant_speeds` for the others), and with the
    wake-up cost the probe measured at the run's rate (its ``wake``, where it has one) against that service;
    and each variant's wake-up cost over that line as the probe measured it
    (:func:`~adascale_rl.elastic.contention.variant_wake_scales` for the others: the environment's
    ``variant_wake_scale``); "run-line" the same with every variant's wake-up cost on the line (the replay before
    per-variant wake-up costs); "run-median" the same with every variant at the probe's median ratio (the replay
    before per-variant speeds); "spec" at the spec's ``service_scale`` (1 without one) and wake-up cost."""
    if host_speed not in HOST_SPEEDS:
        raise Sim2RealError(f"host_speed must be one of {', '.join(HOST_SPEEDS)}, not {host_speed!r}")
    try:
        return _replay_run(run, seeds, env_kwargs, env, host_speed)
    except (KeyError, ValueError, TypeError) as exc:
        from adascale_rl.runtime.folder import FolderError

        if isinstance(exc, Sim2RealError):
            raise
        if isinstance(exc, FolderError):  # the exported controller it ran, refused by its own checks
            raise Sim2RealError(f"{run}: its controller cannot be replayed ({exc})") from None
        what = f"no column or key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise Sim2RealError(f"{run}: its logs cannot be read ({what}); are they adascale-rl run's?") from None


def _replay_run(run: Path, seeds: int, env_kwargs: Mapping[str, Any] | None, spec: str | None = None,
                host_speed: str = "run"):
    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.device.model import outcome
    from adascale_rl.device.presets import parse_preset
    from adascale_rl.environment.spec import env_name, find_spec
    from adascale_rl.environment.env import AdaScaleEnv, AppDeviceError
    from adascale_rl.runtime.folder import catalog_of

    summary = json.loads((run / "summary.json").read_text())
    ctx = run / "context.csv"
    if not ctx.is_file():
        raise Sim2RealError(f"{run} has no context.csv (a run that ended before its first period)")
    rows = _read_intervals(run / "intervals.csv")
    if not rows:
        raise Sim2RealError(f"{run}/intervals.csv has no period")
    policy = _policy_name(run, summary)
    controller = ExportedPolicy(_selector_folder(run, summary), policy)
    # the app's model is the one the controller held on the device (its selector.json's device preset), whatever
    # the world it is replayed in (a recalibrated --env): the slow-down it observed was measured against that
    app_device = parse_preset(controller.doc["device"], "selector.json device")
    if "app_device" in (env_kwargs or {}):
        raise Sim2RealError("the replay's app_device is the controller's own (its selector.json): not an env argument")
    probe = (summary.get("host_speed") or {}) if host_speed != "spec" else {}
    probed = probe.get("service_scale")
    if probed is not None and {"host_speed", "variant_service_scale", "variant_wake_scale"} & set(env_kwargs or {}):
        raise Sim2RealError(f"a run replayed at its own host speed (host_speed={host_speed!r}) takes no host_speed, "
                            "variant_service_scale or variant_wake_scale env argument")
    catalog = catalog_of(controller.doc)
    try:
        replay_spec = find_spec(spec or _spec_of(summary))
        replay_catalog = load_catalog(replay_spec.catalog_path())
    except (ValueError, FileNotFoundError, KeyError) as exc:
        if spec is None:
            raise
        raise Sim2RealError(f"--env {spec} cannot be used: {exc}") from None  # its own fault, named as its
    if catalog is None or catalog.ids != replay_catalog.ids:  # an action is a variant's index: the lists must agree
        raise Sim2RealError(f"{run}: its controller's catalog lists other variants (or another order) than the "
                            f"simulator's catalog {replay_catalog.name}: replay in a spec with the catalog it ran")
    catalog_ms = {v.id: float(v.latency_ms) for v in catalog.variants}
    # each variant at the speed the probe measured for it (interpolated in its precision for those it did not
    # time), or every variant at the probe's median
    speeds: dict[str, float] = {}
    per_variant: dict[str, float] = {}
    if probed is not None:
        median = {v: float(probed) for v in catalog_ms}
        per_variant = variant_speeds(probe.get("ratios") or {}, catalog) if host_speed in ("run", "run-line") else {}
        speeds = per_variant or median
    # the world's wake-up cost as the probe measured it at the run's rate (runs from before the probe had one: the
    # spec's), against the service the world gives each variant; the app's model keeps its selector.json's
    # and, under "run", each variant's wake-up cost over that line as the probe measured it (interpolated in its
    # precision for those it did not measure); the line for every variant under "run-line" and "run-median"
    wake, wake_scales, wake_measured = _probed_wake(
        probe.get("wake") or {}, {v: speeds[v] * ms for v, ms in catalog_ms.items() if v in speeds}, probed, catalog,
        host_speed == "run")
    kwargs = dict(env_kwargs or {})
    if speeds:
        kwargs["variant_service_scale"] = speeds
    if wake_scales:
        kwargs["variant_wake_scale"] = wake_scales
    given = "world_constants" in kwargs
    if wake:
        if given:
            raise Sim2RealError(f"a run replayed with its own wake-up cost (host_speed={host_speed!r}) takes no "
                                "world_constants env argument")
        kwargs["world_constants"] = wake
    try:
        env = AdaScaleEnv(replay_spec, split="test", dataset=ctx,
                          max_episode_steps=len(rows), random_start_variant=False, app_device=app_device, **kwargs)
    except AppDeviceError:
        raise Sim2RealError(f"{run}: its controller was exported for the device {app_device.name} "
                            f"({app_device.cores} cores), which the replay's spec does not describe") from None
    except (ValueError, FileNotFoundError, KeyError) as exc:
        if spec is None:
            raise
        raise Sim2RealError(f"--env {spec} cannot be used: {exc}") from None  # its own fault, named as its
    if spec is not None and env.env_spec.name != env_name(summary["env"]):
        raise Sim2RealError(f"--env {spec} is {env.env_spec.id}; {run} ran {summary['env']}")
    if len(env.exo[0]) != len(rows):
        raise Sim2RealError(f"{run}: context.csv has {len(env.exo[0])} periods, intervals.csv {len(rows)}")
    v0 = summary.get("initial_variant") or rows[0]["variant"]
    results = [run_episode(env, controller, seed=episode_seed(s, 0), trace=0, start=0, variant=v0)
               for s in range(seeds)]
    sim = {k: [r.metrics[k] for r in results]
           for k in ("return", "miss_rate", "mean_latency_ms", "effective_accuracy", "energy_j", "switches")}

    # the model's prediction of every live period, from the context measured in it
    physics, period = env.physics, env.period_s
    f_top = float(physics.table.f_max_mhz)
    index = {vid: i for i, vid in enumerate(env.catalog.ids)}
    standard_errors = interval_standard_errors(run, rows)
    periods = []
    for r, se in zip(rows, standard_errors):
        served = int(r["served"])
        v = index[r["variant"]]
        freq = _num(r["freq_mhz"])
        freq = min(freq, f_top) if math.isfinite(freq) else f_top
        runnable = _num(r["bg_runnable"])
        if not math.isfinite(runnable):
            runnable = _num(r["bg_cpu_util"]) * env.device.cores
        rate, deadline = float(r["request_rate_hz"]), float(r["deadline_ms"])
        measured = _num(r["latency_mean_ms"])
        o = outcome(physics.table, physics.world_arrays, freq_mhz=freq, bg_runnable=runnable, rate_hz=rate,
                    deadline_ms=deadline, dt_s=period)  # every variant: the model's expectation
        predicted = o.serving.mean_ms[v]
        err = 100.0 * (predicted / measured - 1.0) if served and measured > 0 else math.nan
        periods.append({
            "run": run.name, "policy": policy, "t_s": float(r["t_s"]), "segment": int(r["segment"]),
            "busy": int(r["busy"]), "memory_mb": float(r["memory_mb"]), "request_rate_hz": rate,
            "deadline_ms": deadline, "bg_runnable": runnable, "freq_mhz": freq, "variant": r["variant"],
            "served": served, "measured_latency_ms": measured, "predicted_latency_ms": float(predicted),
            "latency_err_pct": err, "measured_latency_se_ms": float(se),
            "measured_on_time_frac": _num(r["on_time_frac"]),
            "predicted_on_time_frac": float(o.serving.on_time_frac[v]),
        })

    def col(name):
        return np.array([_num(r[name]) for r in rows], dtype=float)

    on_time = col("on_time_frac")
    errs = np.array([p["latency_err_pct"] for p in periods], dtype=float)
    errs = errs[np.isfinite(errs)]
    world_wake = env.physics.world.wake_scale  # None: every variant on the line
    row = {
        "run": run.name, "policy": policy, "kind": controller.kind, "periods": len(rows),
        # the environment the run ran, and the one it is replayed in (a later version: the current dynamics)
        "ran_env": summary["env"], "replayed_env": env.env_spec.id,
        "initial_variant": v0, "seeds": seeds,
        # the world's speed in the replay against the catalog, and where it came from
        "world_service_scale": (float(np.median(list(speeds.values()))) if speeds else env.device.service_scale),
        "host_speed_from": "spec" if probed is None else host_speed,
        "speeds_per_variant": int(bool(per_variant)),  # each variant at its own probed ratio (1), or the median
        **{f"world_{k}": float(getattr(env.device, k)) for k in (*WAKE_KEYS, WAKE_CURVE, WAKE_SPREAD)},
        "wake_from": "run" if wake else ("world_constants" if given else "spec"),
        "wake_cv_from": "run" if WAKE_SPREAD in wake else ("world_constants" if given else "spec"),
        # each variant's wake-up cost over the line in the replay's world (1, 1 where every variant is on it), and
        # how many of those the run's probe measured (0: none of its own)
        "world_wake_scale_min": float(np.min(world_wake)) if world_wake is not None else 1.0,
        "world_wake_scale_max": float(np.max(world_wake)) if world_wake is not None else 1.0,
        "wake_scales_measured": wake_measured,
        "live_return": float(np.nansum(col("reward"))),
        "sim_return": float(np.mean(sim["return"])), "sim_sd_return": float(np.std(sim["return"])),
        "live_miss_rate": float(np.nanmean(1.0 - on_time)), "sim_miss_rate": float(np.mean(sim["miss_rate"])),
        "live_mean_latency_ms": float(np.nanmean(col("latency_mean_ms"))),
        "sim_mean_latency_ms": float(np.mean(sim["mean_latency_ms"])),
        "live_effective_accuracy": float(np.nanmean(col("effective_accuracy"))),
        "sim_effective_accuracy": float(np.mean(sim["effective_accuracy"])),
        "live_energy_j_estimate": float(np.nansum(col("energy_j_estimate"))),
        "sim_energy_j": float(np.mean(sim["energy_j"])),
        "live_switches": float(np.nansum(col("switched"))), "sim_switches": float(np.mean(sim["switches"])),
        "latency_err_median_pct": float(np.median(np.abs(errs))) if errs.size else math.nan,
        "latency_err_p90_pct": float(np.percentile(np.abs(errs), 90)) if errs.size else math.nan,
        "latency_bias_median_pct": float(np.median(errs)) if errs.size else math.nan,
        "intervals": int(errs.size),
    }
    return row, periods


def _ranks(values: Sequence[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: -values[i])
    ranks = [0] * len(values)
    for r, i in enumerate(order, 1):
        ranks[i] = r
    return ranks


def summarise(run_rows: list[dict], periods: list[dict]) -> list[dict]:
    """sim2real.csv's rows: per controller, the means over its runs (CIs of the return over runs)."""
    by: dict[str, list[dict]] = {}
    for r in run_rows:
        by.setdefault(r["policy"], []).append(r)
    out = []
    for name, rs in by.items():
        live = [r["live_return"] for r in rs]
        sim = [r["sim_return"] for r in rs]
        errs = np.array([p["latency_err_pct"] for p in periods if p["policy"] == name], dtype=float)
        errs = errs[np.isfinite(errs)]
        mean_live, mean_sim = float(np.mean(live)), float(np.mean(sim))
        row = {"policy": name, "kind": rs[0]["kind"], "runs": len(rs),
               "live_return": mean_live, "live_ci95_return": ci95(live),
               "sim_return": mean_sim, "sim_ci95_return": ci95(sim),
               "return_gap_pct": 100.0 * (mean_sim - mean_live) / abs(mean_live) if mean_live else math.nan}
        for k in ("miss_rate", "mean_latency_ms", "effective_accuracy", "switches"):
            row[f"live_{k}"] = float(np.mean([r[f"live_{k}"] for r in rs]))
            row[f"sim_{k}"] = float(np.mean([r[f"sim_{k}"] for r in rs]))
        row["live_energy_j_estimate"] = float(np.mean([r["live_energy_j_estimate"] for r in rs]))
        row["sim_energy_j"] = float(np.mean([r["sim_energy_j"] for r in rs]))
        row["latency_err_median_pct"] = float(np.median(np.abs(errs))) if errs.size else math.nan
        row["latency_err_p90_pct"] = float(np.percentile(np.abs(errs), 90)) if errs.size else math.nan
        row["latency_bias_median_pct"] = float(np.median(errs)) if errs.size else math.nan
        row["intervals"] = int(errs.size)
        # what of the gaps is noise: the return gap paired run by run (the same trace on both sides), and the
        # latency error an exact model would show from sampling alone and a hindsight predictor's
        gaps = [s - v for s, v in zip(sim, live)]
        row["return_gap_ci95_pct"] = 100.0 * ci95(gaps) / abs(mean_live) if mean_live else math.nan
        mine = [p for p in periods if p["policy"] == name]
        noise = np.array([100.0 * HALF_NORMAL_MEDIAN * p["measured_latency_se_ms"] / p["measured_latency_ms"]
                          for p in mine if math.isfinite(p["latency_err_pct"])], dtype=float)
        noise = noise[np.isfinite(noise)]
        row["latency_noise_median_pct"] = float(np.median(noise)) if noise.size else math.nan
        hind = hindsight_errors(mine)
        hind = hind[np.isfinite(hind)]
        row["latency_hindsight_median_pct"] = float(np.median(np.abs(hind))) if hind.size else math.nan
        out.append(row)
    for key, rank in (("live_return", "live_rank"), ("sim_return", "sim_rank")):
        for r, k in zip(out, _ranks([r[key] for r in out])):
            r[rank] = k
    out.sort(key=lambda r: r["live_rank"])
    return out


def by_segment(periods: list[dict]) -> list[dict]:
    """The latency and on-time predictions per load segment and variant, every controller's periods pooled."""
    groups: dict[tuple, list[dict]] = {}
    for p in periods:
        groups.setdefault((p["segment"], p["variant"]), []).append(p)
    out = []
    for (seg, variant), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[1][0]["predicted_latency_ms"])):
        e = np.array([p["latency_err_pct"] for p in ps], dtype=float)
        served = np.isfinite(e)
        meas = np.array([p["measured_latency_ms"] for p in ps], dtype=float)[served]
        pred = np.array([p["predicted_latency_ms"] for p in ps], dtype=float)[served]
        first = ps[0]
        out.append({"segment": seg, "busy": first["busy"], "memory_mb": first["memory_mb"],
                    "request_rate_hz": first["request_rate_hz"], "deadline_ms": first["deadline_ms"],
                    "variant": variant, "bg_runnable": float(np.mean([p["bg_runnable"] for p in ps])),
                    "periods": len(ps),
                    "measured_latency_ms": float(np.mean(meas)) if meas.size else math.nan,
                    "predicted_latency_ms": float(np.mean(pred)) if pred.size else math.nan,
                    "err_median_pct": float(np.median(np.abs(e[served]))) if served.any() else math.nan,
                    "bias_median_pct": float(np.median(e[served])) if served.any() else math.nan,
                    "measured_on_time": float(np.nanmean([p["measured_on_time_frac"] for p in ps])),
                    "predicted_on_time": float(np.mean([p["predicted_on_time_frac"] for p in ps]))})
    return out


def _version_line(run_rows: list[dict]) -> list[str]:
    """Lines saying which runs ran an earlier version of the environment than the one they are replayed in."""
    moved = sorted({(r["ran_env"], r["replayed_env"]) for r in run_rows if r.get("ran_env", r.get("replayed_env"))
                    != r.get("replayed_env")})
    if not moved:
        return []
    n = sum(1 for r in run_rows if r.get("ran_env") != r.get("replayed_env"))
    pairs = "; ".join(f"ran `{a}`, replayed in `{b}`" for a, b in moved)
    return [f"Versions: {n} run(s) ran an earlier version of the environment's dynamics than the simulator replays "
            f"them in ({pairs}): the measurements stand, the predictions are the current model's.", ""]


def _speed_line(run_rows: list[dict]) -> str:
    """How fast the replayed host served, against the catalog, and from what."""
    if not run_rows:
        return ""
    own = [r["world_service_scale"] for r in run_rows if r["host_speed_from"] != "spec"]
    spec = sorted({round(r["world_service_scale"], 4) for r in run_rows if r["host_speed_from"] == "spec"})
    per_variant = sum(int(r.get("speeds_per_variant", 0)) for r in run_rows)
    parts = []
    if own:
        how = ([f"each variant at its own ratio in {per_variant}"] if per_variant else []) + (
            [f"every variant at the median in {len(own) - per_variant}"] if len(own) > per_variant else [])
        parts.append(f"{len(own)} run(s) at the speed measured right before each (back-to-back service "
                     f"{min(own):.2f}-{max(own):.2f}x the catalog's latency, median {float(np.median(own)):.2f}x; "
                     f"{', '.join(how)})")
    if spec:
        parts.append(f"{len(run_rows) - len(own)} at the spec's service_scale ({', '.join(f'{x:g}' for x in spec)}x)")
    line = "Host speed in the replay: " + "; ".join(parts) + "."
    wake = [r for r in run_rows if r.get("wake_from") == "run"]
    if wake:
        w0 = [r["world_idle_wake_ms"] for r in wake]
        w1 = [r["world_idle_wake_per_ms"] for r in wake]
        cv = [r["world_wake_cv"] for r in wake if r.get("wake_cv_from") == "run"]
        line += (f" Wake-up cost: {len(wake)} run(s) at the cost the probe measured at the run's rate right before "
                 f"it (idle_wake_ms {min(w0):.2f}-{max(w0):.2f}, idle_wake_per_ms {min(w1):.3f}-{max(w1):.3f}"
                 + (f"; its spread in {len(cv)}, wake_cv {min(cv):.2f}-{max(cv):.2f} x its mean" if cv else "")
                 + ")")
        own_wake = [r for r in wake if r.get("wake_scales_measured")]
        if own_wake:
            lo = min(r["world_wake_scale_min"] for r in own_wake)
            hi = max(r["world_wake_scale_max"] for r in own_wake)
            n = [r["wake_scales_measured"] for r in own_wake]
            line += (f"; each variant's cost over that line as the probe measured it in {len(own_wake)} "
                     f"({min(n)}-{max(n)} variants measured, the others interpolated in their precision; "
                     f"{lo:.2f}-{hi:.2f}x the line)")
        line += ((f"; {len(run_rows) - len(wake)} at the spec's or the given world_constants'"
                  if len(wake) < len(run_rows) else "") + ".")
    return line


def _markdown(rows: list[dict], segments: list[dict], seeds: int, source: Path, machine: str,
              env: str | None = None, run_rows: list[dict] | None = None) -> str:
    def f(x, nd=2):
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"

    def pm(m, c, nd=2):
        return f(m, nd) if c is None or (isinstance(c, float) and math.isnan(c)) else f"{f(m, nd)} ± {f(c, nd)}"

    lines = ["# Sim-to-real: the simulator against the live runs", "",
             f"Live runs: `{source}` (their monitored context replayed as a trace in the simulator, the same "
             f"exported controller deciding, {seeds} latency-noise seeds per run; simulator: "
             f"{'the spec each run names' if env is None else f'`{env}`'}). Machine: {machine}.", "",
             *_version_line(run_rows or []),
             _speed_line(run_rows or []), "",
             "| policy | kind | runs | return live | return sim | gap | rank live / sim | miss live / sim | "
             "latency ms live / sim | eff. accuracy live / sim | latency error median / p90 (bias) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['kind']} | {r['runs']} | {pm(r['live_return'], r['live_ci95_return'])} | "
            f"{pm(r['sim_return'], r['sim_ci95_return'])} | {f(r['return_gap_pct'], 1)} % | "
            f"{r['live_rank']} / {r['sim_rank']} | {f(r['live_miss_rate'], 3)} / {f(r['sim_miss_rate'], 3)} | "
            f"{f(r['live_mean_latency_ms'], 3)} / {f(r['sim_mean_latency_ms'], 3)} | "
            f"{f(r['live_effective_accuracy'], 3)} / {f(r['sim_effective_accuracy'], 3)} | "
            f"{f(r['latency_err_median_pct'], 1)} % / {f(r['latency_err_p90_pct'], 1)} % "
            f"({f(r['latency_bias_median_pct'], 1)} %) |")
    lines += ["", "## What of the gap is noise", "",
              "| policy | runs | return gap (95 % CI, paired by run) | latency error median | sampling alone | "
              "hindsight floor |", "|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["return_gap_ci95_pct"]
        gap = f"{f(r['return_gap_pct'], 1)} %" + ("" if math.isnan(ci) else f" ± {f(ci, 1)} %")
        lines.append(f"| {r['policy']} | {r['runs']} | {gap} | {f(r['latency_err_median_pct'], 1)} % | "
                     f"{f(r['latency_noise_median_pct'], 1)} % | {f(r['latency_hindsight_median_pct'], 1)} % |")
    lines += ["", "Return gap: the mean over runs of (sim - live) on each run's own trace, over |live|, with the 95 % "
                  "CI of that mean (Student t over runs): a CI that holds 0 is a gap the runs cannot tell from noise "
                  "(the live return's own spread between runs and the simulator's between seeds). Sampling alone: "
                  "the median error an exact model would show because each period's mean latency is measured on a "
                  "finite number of requests (median over periods of 0.674 x the standard error of the period's mean "
                  "from requests.npz / the mean; a lower bound, as a period's requests are correlated). Hindsight "
                  "floor: the median error of a predictor that knew the mean measured latency of every other period "
                  "of the same load segment and variant (leave-one-out): the variation between periods that the "
                  "schedule does not explain (host drift, the run queue's own swings, sampling). A model that reads "
                  "only what the schedule sets cannot do better; the performance model also reads each period's "
                  "measured run queue and clock, so it could, but an error well above this floor is the model's.", "",
              "## The predictions by load segment and variant (every controller's periods pooled)", "",
              "| segment | busy | memory MB | rate Hz | deadline ms | variant | bg_runnable read | periods | latency ms "
              "measured / predicted | error median (bias) | on-time measured / predicted |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in segments:
        lines.append(f"| {s['segment']} | {s['busy']} | {f(s['memory_mb'], 0)} | {f(s['request_rate_hz'], 0)} | "
                     f"{f(s['deadline_ms'], 1)} | {s['variant']} | {f(s['bg_runnable'])} | {s['periods']} | "
                     f"{f(s['measured_latency_ms'], 3)} / {f(s['predicted_latency_ms'], 3)} | "
                     f"{f(s['err_median_pct'], 1)} % ({f(s['bias_median_pct'], 1)} %) | "
                     f"{f(s['measured_on_time'], 3)} / {f(s['predicted_on_time'], 3)} |")
    lines += ["", "Return: summed reward over the run's periods (live: from what was measured; sim: the simulator's, "
                  "mean over seeds); the ± are 95 % CIs over runs. Gap: (sim - live) / |live|. Miss rate, latency and "
                  "effective accuracy are means over periods on both sides. Latency error: the performance model's "
                  "expected mean response time of the variant that ran, under the clock, run queue and rate measured "
                  "in the period, against the measured mean response time, (predicted / measured - 1); median and "
                  "p90 of its absolute value over the periods that served a request, bias = the signed median. "
                  "A live request that waited past its deadline before service is dropped and counted as a miss, so the live "
                  "mean latency is of the requests served (the simulator's too). On-time: the share of the period's "
                  "requests served within the deadline (the model's expectation for the measured context). Energy "
                  "(in sim2real.csv) is an estimate on both sides: no power counter is read.", ""]
    return "\n".join(lines)


def sim2real(live_dir: str | Path, *, out: str | Path | None = None, seeds: int = 5, progress: bool = True,
             env_kwargs: Mapping[str, Any] | None = None, env: str | None = None, host_speed: str = "run") -> list[dict]:
    """Compare the live runs under ``live_dir`` with the simulator; write the files into ``out`` (default
    ``live_dir``) and return sim2real.csv's rows. ``env``: replay in this spec of the runs' environment (same id,
    a catalog of the same variants in the same order; e.g. one ``adascale-rl calibrate`` wrote) instead of the spec
    each run names. ``host_speed``: "run", each run at the host speed measured right before it (where it has
    one), each variant at its own speed and wake-up cost; "run-line", the same with every variant's wake-up cost on
    the probe's line; "run-median", every variant at the probe's median speed (and on the line); or "spec", every
    run at the spec's (:func:`replay_run`)."""
    from adascale_rl._files import atomic_write_text
    from adascale_rl.evaluation.report import machine, write_csv

    if seeds < 1:
        raise Sim2RealError(f"--seeds must be at least 1, not {seeds}")
    if host_speed not in HOST_SPEEDS:
        raise Sim2RealError(f"--host-speed must be one of {', '.join(HOST_SPEEDS)}, not {host_speed!r}")
    live_dir = Path(live_dir)
    runs = live_runs(live_dir)
    out = Path(out) if out is not None else live_dir
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(runs), unit="run", desc="sim2real", file=sys.stderr, dynamic_ncols=True)
    run_rows, periods = [], []
    try:
        for run in runs:
            row, ps = replay_run(run, seeds=seeds, env_kwargs=env_kwargs, env=env, host_speed=host_speed)
            run_rows.append(row)
            periods.extend(ps)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    rows = summarise(run_rows, periods)
    write_csv(rows, out / "sim2real.csv", COLUMNS)
    write_csv(run_rows, out / "sim2real_runs.csv", list(run_rows[0]))
    write_csv(periods, out / "sim2real_intervals.csv", INTERVAL_COLUMNS)
    atomic_write_text(out / "sim2real.md", _markdown(rows, by_segment(periods), seeds, live_dir, machine(), env,
                                                     run_rows))
    return rows


def sim2real_command(args) -> int:
    """``adascale-rl sim2real``: arguments from :mod:`adascale_rl.cli`."""
    sim2real(args.live_dir, out=args.out, seeds=args.seeds, progress=not args.no_progress, env=args.env,
             host_speed=args.host_speed)
    out = Path(args.out or args.live_dir)
    print((out / "sim2real.md").read_text())
    print(f"wrote {out / 'sim2real.csv'}, sim2real_runs.csv, sim2real_intervals.csv and sim2real.md")
    return 0
