"""The live loop: the real elastic model served on this machine, a controller choosing its variant every period.

``adascale-rl run --env ENV --controller C [--load SCHEDULE] --out DIR``

* **The model**: every variant of the environment's catalog, as ``adascale-rl profile`` built and cached them
  (:func:`adascale_rl.elastic.variants.variant_files`), loaded once; a switch makes another one the active
  model, as AdaScale does.
* **The requests**: labelled inputs from the test split of the catalog's data (the digits by default), one
  by one, arriving open loop at the app's rate (one every ``1 / rate`` seconds, whatever the server is doing; a
  new rate from the schedule takes effect at the next period's start) and served first come, first served by one thread with the app's torch threads. A
  request that has already waited past its deadline when the server reaches it is dropped (a miss, as a
  camera app drops a stale frame); the response time of a served request is arrival to result.
* **The controller**: the on-device :class:`~adascale_rl.runtime.Selector` of an exported folder, a shipped or
  trained controller (exported first) or a heuristic by name (its margins tuned on the environment's train
  split as ``bench`` tunes them). Every period it reads the live context (psutil, the run-queue sampler),
  gets the served requests' latencies through ``report`` and picks the variant for the next period.
* **The load**: an optional load schedule (``envs/loads/*.yaml``): busy processes, a memory hog and the app's
  mode (rate, deadline) per segment; its children are stopped on exit, an error, Ctrl-C and SIGTERM.

Written into ``--out``: ``intervals.csv`` (one row per period, written as it ends: the context the monitor
read, the load segment, the variant, requests, served, dropped, on time, correct, latency median/p95/mean,
queueing, the energy estimate and the reward with the environment's own weights), ``requests.npz`` (one
entry per request: arrival, start and end times, variant, the test input's index, its label, the answer,
dropped), ``context.csv`` (the
monitored context as a trace of the schema, for the simulator: ``adascale-rl bench --traces DIR``),
``summary.json`` and ``selector/`` (the exported controller). Ctrl-C ends the run early and leaves all of
them readable (``summary.json`` says ``interrupted``; the last row of ``intervals.csv`` is then the part of
the period that had run).

Energy is an estimate here: the process's CPU time in the period times the profile's dynamic power per busy
core (:data:`adascale_rl.elastic.host.ESTIMATED_DYNAMIC_W_PER_CORE`), the rule the catalog's ``energy_mj``
follows; no power counter is read.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: intervals.csv columns, in order
INTERVAL_COLUMNS = (
    "t_s", "segment", "busy", "memory_mb", "request_rate_hz", "deadline_ms",
    "bg_cpu_util", "bg_runnable", "mem_avail_mb", "freq_mhz", "cpu_util",
    "variant", "switched", "selector_status",
    "requests", "served", "dropped", "on_time", "correct", "correct_on_time", "accuracy", "on_time_frac",
    "effective_accuracy",
    "latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "service_mean_ms", "queue_mean_ms",
    "cpu_s", "energy_j_estimate", "mem_mb", "reward",
)


#: requests.npz arrays (one entry per request) and their dtypes
REQUEST_FIELDS = (("arrival_s", float), ("start_s", float), ("end_s", float), ("variant", int), ("input", int),
                  ("label", int), ("answer", int), ("dropped", bool))


#: seconds of the host-speed probe before every live run (``LiveSetup.host_speed``; ``--host-probe``)
HOST_PROBE_S = 3.0

#: requests per variant of the host-speed probe's wake-up cost (at 60 Hz, about 2.5 s over its 6 variants)
WAKE_CALLS = 24


class LiveError(ValueError):
    """A live run that cannot start; the message says what to change."""


class _RecordingMonitor:
    """The selector's monitor, keeping the last reading for the interval log."""

    def __init__(self, inner):
        self.inner = inner
        self.last = None

    def read(self):
        self.last = self.inner.read()
        return self.last


def resolve_controller(controller: str, spec, out: Path, *, quick: bool = False) -> tuple[Path, str]:
    """(exported folder, kind: ``heuristic`` or ``learned``) for ``controller``: an exported folder (with
    selector.json), a heuristic by name, or a trained controller (a run folder, ``agents/<env>/<algo>``, or ``<algo>`` of the environment's shipped
    ones), exported into ``out``."""
    from adascale_rl import paths
    from adascale_rl.runtime import schema
    from adascale_rl.runtime.export import export_controller, export_heuristic

    given = Path(controller).expanduser()
    if (given / schema.SELECTOR_JSON).is_file():  # its kind as the export wrote it: a heuristic or a network
        try:
            doc = json.loads((given / schema.SELECTOR_JSON).read_text())
            exported, env_id = doc["policy"]["kind"], doc["env"]["id"]
            ids = [v["id"] for v in doc["variants"]]
        except (OSError, ValueError, KeyError, TypeError):
            exported = env_id = ids = None  # the Selector says what is wrong with the folder when it loads it
        if ids is not None:
            from adascale_rl.device.catalog import load_catalog

            catalog = load_catalog(spec.catalog_path())
            if ids != list(catalog.ids):  # its decisions name variants this model does not have (or in another order)
                raise LiveError(f"--controller {controller} was exported for {env_id}, whose catalog's variants are "
                                f"not {spec.id}'s ({catalog.name}): export a controller of {spec.name} "
                                f"(adascale-rl export --agent <its folder> --out DIR), or pass --env {env_id}")
        return given.resolve(), "heuristic" if exported == "heuristic" else "learned"
    if controller in schema.HEURISTICS:
        from adascale_rl.evaluation.bench import tuned_policy

        return export_heuristic(controller, str(spec.path), out, tune=tuned_policy, quick=quick), "heuristic"
    candidates = [controller, f"{spec.name}/{controller}"]
    for c in candidates:
        try:
            agent = paths.resolve(c, "agents")
        except FileNotFoundError:
            continue
        if (agent / "best_model.zip").exists() or (agent / "model.zip").exists():
            return export_controller(agent, out, env_id=str(spec.path)), "learned"
    from adascale_rl.evaluation.bench import learned_controllers
    from adascale_rl.policies import did_you_mean

    hint = did_you_mean(controller, [*schema.HEURISTICS, *learned_controllers(spec.name)])
    raise LiveError(f"--controller {controller!r}{hint} is not an exported folder (no {schema.SELECTOR_JSON}), not a "
                    f"heuristic ({', '.join(schema.HEURISTICS)}) and not a trained controller (a run folder, "
                    f"agents/<env>/<algo>, or a shipped one of {spec.name})")


def _default_mode(spec) -> tuple[float, float]:
    """(rate Hz, deadline ms) of the environment's workload's default mode, else the schema's defaults."""
    from adascale_rl.context.schema import DEFAULTS

    if spec.workload:
        from adascale_rl.context.scenarios import load_workload

        w = load_workload(spec.workload)
        m = w.modes[w.default_mode]
        return float(m.request_rate_hz), float(m.deadline_ms)
    return float(DEFAULTS["request_rate_hz"]), float(DEFAULTS["deadline_ms"])


def _percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else math.nan


class _Interval:
    """What one period of serving gathered."""

    def __init__(self, t_s: float, cpu0: float, segment: int, rate_hz: float, deadline_ms: float):
        self.t_s, self.cpu0, self.segment = t_s, cpu0, segment
        self.rate_hz, self.deadline_ms = rate_hz, deadline_ms
        self.requests = self.served = self.dropped = self.on_time = self.correct = self.correct_on_time = 0
        self.latency: list[float] = []
        self.service: list[float] = []
        self.queue: list[float] = []

    def add(self, outcome: tuple | None) -> None:
        """One request: None if dropped, else (latency ms, service ms, queueing ms, on time, correct)."""
        self.requests += 1
        if outcome is None:
            self.dropped += 1
            return
        latency, service, queue, on_time, correct = outcome
        self.served += 1
        self.on_time += bool(on_time)
        self.correct += bool(correct)
        self.correct_on_time += bool(on_time and correct)
        self.latency.append(latency)
        self.service.append(service)
        self.queue.append(queue)


class LiveSetup:
    """An environment's real model, loaded once: every variant of its catalog (TorchScript, warmed up), the
    labelled test inputs in the order of ``seed``, the workload's default mode, and the simulator's environment
    on the test split (for the catalog and the reward)."""

    def __init__(self, env: str, *, threads: int = 1, seed: int = 0):
        import torch

        from adascale_rl.elastic.profilers import load_torchscript
        from adascale_rl.elastic.variants import catalog_data, variant_files
        from adascale_rl.environment.env import AdaScaleEnv
        from adascale_rl.environment.spec import find_spec

        if threads < 1:
            raise LiveError(f"--threads must be at least 1, not {threads}")
        self.spec = find_spec(env)
        self.sim = AdaScaleEnv(self.spec, split="test")
        self.catalog = self.sim.catalog
        files = variant_files(self.catalog)  # FileNotFoundError names the profile command that rebuilds them
        data = catalog_data(self.catalog)
        self.rate_hz, self.deadline_ms = _default_mode(self.spec)
        torch.set_num_threads(threads)
        self.models = {vid: load_torchscript(f) for vid, f in files.items()}  # torch's TorchScript warning: not news
        self.order = np.random.default_rng(seed).permutation(len(data.y_test))
        self.xs = [data.x_test[i:i + 1] for i in self.order]
        self.ys = [int(data.y_test[i]) for i in self.order]
        with torch.inference_mode():  # TorchScript profiles and optimises a function over its first calls
            for m in self.models.values():
                for _ in range(5):
                    m(self.xs[0])

    def host_speed(self, seconds: float = HOST_PROBE_S, variants: int = 6,
                   rate_hz: float | None = None, also: Sequence[str] = ()) -> dict[str, Any]:
        """The host's speed now: every variant of the catalog served back to back with nothing else running in
        this process, in two interleaved passes (a drift in between hits all alike), about ``seconds`` in all;
        the median service of each over its catalog latency (``ratios``: a host does not speed its variants up
        evenly, and ``sim2real`` replays each at its own) and their median, ``service_scale``, as calibrate writes
        it into a preset (None if implausible). With ``rate_hz``, then the host's wake-up cost at that rate
        (``wake``) on ``variants`` of the catalog spread over its latency range (the variants ``adascale-rl
        calibrate`` times) and the variants named in ``also`` (a run's starting variant: the one a controller that
        keeps its variant serves throughout, whose own wake-up cost ``sim2real`` then replays instead of one
        interpolated between its neighbours'): each served :data:`WAKE_CALLS` times as the live loop serves a
        request, one every ``1 / rate_hz`` seconds with the thread asleep in between, and the line
        ``idle_wake_ms + idle_wake_per_ms x service`` through the mean response over the variant's measured
        back-to-back service (divided by the share of the full cost the model gives a sleep that long, with the
        spec's ``idle_sleep_ms``, which ``wake`` records), each variant weighted by 1 / the squared standard error of its excess (``None``
        where implausible). The machine should be quiet: run it before the load starts."""
        import torch

        from adascale_rl.elastic.calibrate import host_speed, pick_variants

        if not (math.isfinite(seconds) and seconds > 0):
            raise LiveError(f"the host-speed probe needs a positive time, not {seconds}")
        if rate_hz is not None and not (math.isfinite(rate_hz) and rate_hz > 0):
            raise LiveError(f"the host-speed probe's request rate must be positive, not {rate_hz}")
        latency = {v.id: float(v.latency_ms) for v in self.catalog.variants}
        chosen = pick_variants(latency, min(variants, len(latency)))
        chosen = sorted(set(chosen) | {v for v in also if v in latency}, key=lambda v: (latency[v], v))
        times: dict[str, list[float]] = {v: [] for v in sorted(latency, key=latency.get)}
        per = seconds / (2 * len(times))
        clock, x = time.perf_counter, self.xs[0]
        t0 = clock()
        with torch.inference_mode():
            for _ in range(2):
                for v in times:
                    model = self.models[v]
                    model(x)  # its weights back in the caches after the others ran: not timed
                    end = clock() + per
                    while True:
                        a = clock()
                        model(x)
                        b = clock()
                        times[v].append((b - a) * 1000.0)
                        if b >= end and len(times[v]) >= 3:
                            break
        drift = {v: float(np.median(t)) / latency[v] for v, t in times.items()}
        ratio, scale = host_speed(drift)
        out = {"service_scale": scale, "median_ratio": round(ratio, 4),
               "ratios": {v: round(r, 4) for v, r in drift.items()}, "calls": {v: len(t) for v, t in times.items()}}
        if rate_hz is not None:  # against the service the replay's world gives each variant: its own ratio's
            world = {v: drift[v] * latency[v] for v in chosen}
            out["wake"] = self._wake_cost(chosen, world, rate_hz, times)
        out.update(seconds=round(clock() - t0, 3), measured_at=time.strftime("%Y-%m-%d %H:%M:%S"))
        return out

    def _wake_cost(self, chosen: list[str], world_ms: dict[str, float], rate_hz: float,
                   b2b_ms: dict[str, list[float]] | None = None) -> dict[str, Any]:
        """:meth:`host_speed`'s wake-up cost at ``rate_hz``: each variant's excess of the mean response over
        ``world_ms``, the service the replay's world gives it (its measured back-to-back service: the catalog's
        latency x its own ratio), so that the world's mean response is the measured one for the variants timed
        (:func:`~adascale_rl.elastic.contention.wake_excess`), and the weighted line through them
        (:func:`~adascale_rl.elastic.contention.fit_wake_line`, which ``sim2real`` calls again on them). With
        ``b2b_ms`` (each variant's back-to-back service times), also how far the wake-up cost spreads: each
        variant's ``spread_ms`` (:func:`~adascale_rl.elastic.contention.wake_spread`) and ``wake_cv``, the spread
        over the cost the line gives (:func:`~adascale_rl.elastic.contention.fit_wake_cv`); all of it
        :func:`~adascale_rl.elastic.contention.fit_wake`, which ``benchmarks/contention.py`` calls too."""
        import torch

        from adascale_rl.elastic.contention import fit_wake, sleeps_between

        period_s = 1.0 / rate_hz
        tau = float(self.sim.device.idle_sleep_ms)
        clock, xs = time.perf_counter, self.xs
        responses, service = {}, {}
        with torch.inference_mode():
            for v in chosen:
                if not sleeps_between(world_ms[v], rate_hz):  # hardly a sleep: no wake-up to measure
                    continue
                model, resp, svc = self.models[v], [], []
                arrival = clock() + period_s
                for i in range(WAKE_CALLS + 1):  # the first after the other variants ran: not counted
                    time.sleep(max(0.0, arrival - clock()))
                    a = clock()
                    int(model(xs[i % len(xs)]).argmax())
                    b = clock()
                    if i:
                        resp.append((b - arrival) * 1000.0)
                        svc.append((b - a) * 1000.0)
                    arrival += period_s
                    if arrival < clock():  # late (a slow host): the next request arrives now
                        arrival = clock()
                responses[v], service[v] = resp, float(np.mean(svc))
        fit = fit_wake(world_ms, responses, b2b_ms or {}, rate_hz, tau)
        measured = fit.pop("excess_ms")
        out = {"rate_hz": rate_hz, "calls": WAKE_CALLS, "idle_sleep_ms": tau,
               "response_ms": {v: round(float(np.mean(responses[v])), 4) for v in measured},
               "service_ms": {v: round(service[v], 4) for v in measured},
               "excess_ms": {v: round(e, 4) for v, e in measured.items()},
               "excess_se_ms": {v: round(e, 4) for v, e in fit.pop("excess_se_ms").items()},
               "world_ms": {v: round(world_ms[v], 4) for v in measured}}
        spread = fit.pop("spread_ms")
        if spread:
            out["spread_ms"] = {v: round(x, 4) for v, x in spread.items()}
        out.update(fit)
        return out


def run_live(env: str, controller: str, out: str | os.PathLike, *, load: str | None = None,
             duration_s: float | None = None, rate_hz: float | None = None, deadline_ms: float | None = None,
             threads: int = 1, seed: int = 0, quick: bool = False, progress: bool = True,
             setup: "LiveSetup | None" = None, policy: str | None = None,
             host_probe_s: float | None = HOST_PROBE_S) -> dict[str, Any]:
    """Serve the real elastic model of ``env`` under ``controller`` (and the load schedule ``load``) for
    ``duration_s`` seconds (default: the schedule's length, else 60 s); returns the summary written to
    ``out/summary.json``. ``setup``: the environment's variants and inputs, loaded once for several runs;
    ``policy``: the controller's name in the summary (default ``controller``). ``host_probe_s``: seconds of
    :meth:`LiveSetup.host_speed` right before the run (its ``host_speed`` in the summary, which ``sim2real``
    replays the run at); 0 or None: no probe."""
    import torch

    from adascale_rl._files import atomic_write_text
    from adascale_rl._signals import sigterm_as_interrupt
    from adascale_rl.context.load import LoadSchedule, ScheduleRunner
    from adascale_rl.context.traces import trace_to_csv
    from adascale_rl.elastic.host import ESTIMATED_DYNAMIC_W_PER_CORE
    from adascale_rl.runtime import Selector
    from adascale_rl.runtime.live import SelectorMonitor

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LiveError(f"--out {out} is a file; give a folder")
    if threads < 1:
        raise LiveError(f"--threads must be at least 1, not {threads}")
    for name, v in (("--duration", duration_s), ("--rate", rate_hz), ("--deadline", deadline_ms)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise LiveError(f"{name} must be a positive number, not {v}")
    if host_probe_s is not None and not (math.isfinite(host_probe_s) and host_probe_s >= 0):
        raise LiveError(f"--host-probe must be a number of seconds (0: none), not {host_probe_s}")
    setup = setup if setup is not None else LiveSetup(env, threads=threads, seed=seed)
    spec, sim, catalog, models, xs, ys, order = (setup.spec, setup.sim, setup.catalog, setup.models, setup.xs,
                                                  setup.ys, setup.order)
    base_rate, base_deadline = setup.rate_hz, setup.deadline_ms
    schedule = LoadSchedule.load(load) if load else None
    duration = float(duration_s or (schedule.duration_s if schedule is not None else 60.0))

    out.mkdir(parents=True, exist_ok=True)
    folder, kind = resolve_controller(controller, spec, out / "selector", quick=quick)
    torch.set_num_threads(threads)

    period = float(spec.period_s)
    reward = sim.reward
    peak = {v.id: v.peak_mem_mb for v in catalog.variants}
    requests: list[tuple] = []  # one tuple per request, in REQUEST_FIELDS order, appended once its outcome is known
    context_rows: list[dict[str, float]] = []
    totals = {"return": 0.0, "requests": 0, "served": 0, "dropped": 0, "on_time": 0, "correct": 0,
              "correct_on_time": 0, "switches": 0, "periods": 0, "latency_sum_ms": 0.0, "energy_j_estimate": 0.0}
    interrupted = False
    monitor = _RecordingMonitor(SelectorMonitor(os.getpid()).start())
    selector = intervals_f = bar = None
    seg_index = -1
    seg, switched, variant, iv = None, False, None, None
    initial = host = None
    rate, deadline = rate_hz or base_rate, deadline_ms or base_deadline
    proc = time.process_time
    term = ExitStack()  # SIGTERM as Ctrl-C until the logs are closed (also for callers outside the CLI); entered
    term.enter_context(sigterm_as_interrupt())  # right before the try whose finally leaves it
    played = None  # the load schedule's runner: what its segments held, for the summary
    try:
        selector = Selector.load(folder, monitor=monitor)
        if selector.status != "ok":
            raise LiveError(f"the selector cannot use {folder}: {selector.status}")
        period = float(selector.period_s or period)
        selector.set_mode(rate_hz=rate, deadline_ms=deadline)
        selector.select()  # the first decision compiles the policy's program: not inside the first period
        if host_probe_s:  # the host's speed now, before the load starts
            first = schedule.segments[0].request_rate_hz if schedule is not None else None
            host = setup.host_speed(host_probe_s, rate_hz=rate_hz or first or base_rate,  # and its wake-up cost,
                                    also=[selector.variant])  # the starting variant's among them
        variant = initial = selector.variant  # loaded when the first period starts: its decision may switch
        time.sleep(0.03)  # and the CPU counters (10 ms ticks) move before the first period's read, which waits for one
        intervals_f = open(out / "intervals.csv", "w", newline="", encoding="utf-8")
        writer = csv.writer(intervals_f, lineterminator="\n")
        writer.writerow(INTERVAL_COLUMNS)
        intervals_f.flush()
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=int(math.ceil(duration / period)), unit="period", desc=f"live {spec.name} {controller}",
                       file=sys.stderr, dynamic_ncols=True)

        def finish(done: _Interval, ran: str, did_switch: bool, segment) -> None:
            """Log a period that has ended; the monitor's last reading covers it (taken at its end)."""
            row = _close(done, proc(), ran, did_switch, selector.status, segment, monitor.last, reward, peak,
                         ESTIMATED_DYNAMIC_W_PER_CORE)
            writer.writerow([_fmt(row[c]) for c in INTERVAL_COLUMNS])
            intervals_f.flush()
            _accumulate(totals, row)
            context_rows.append(_context_row(row))
            if bar is not None:
                bar.update(1)

        try:
            with (ScheduleRunner(schedule) if schedule is not None else nullcontext()) as runner:
                played = runner
                clock = time.perf_counter
                t0 = clock()
                end = t0 + duration
                next_period = next_arrival = t0
                k = 0
                while True:
                    now = clock()
                    if now >= next_period or now >= end:
                        if runner is not None and runner.error is not None:
                            raise LiveError(f"the load schedule {schedule.name} failed: {runner.error}")
                        if now >= end:
                            if iv is not None:
                                monitor.read()  # the context of the last period, read at its end
                                finish(iv, variant, switched, seg)
                                iv = None
                            break
                        # the segment by the schedule's clock (the runner's index moves only once the previous
                        # segment's children have been stopped, a few ms after the boundary)
                        new_seg = schedule.at(now - t0 + 1e-6) if schedule is not None else None
                        new_index = schedule.segments.index(new_seg) if new_seg is not None else 0
                        if new_index != seg_index:  # the app's mode of the segment, from its first period on
                            seg_index = new_index
                            rate = rate_hz or (new_seg.request_rate_hz if new_seg is not None else None) or base_rate
                            deadline = (deadline_ms or (new_seg.deadline_ms if new_seg is not None else None)
                                        or base_deadline)
                            selector.set_mode(rate_hz=rate, deadline_ms=deadline)
                            next_arrival = min(next_arrival, now + 1.0 / rate)
                        chosen = selector.select()  # reads the context of the period that ends here
                        if iv is not None:
                            finish(iv, variant, switched, seg)
                        switched = chosen != variant
                        variant, seg = chosen, new_seg
                        model = models[variant]
                        iv = _Interval(next_period - t0, proc(), seg_index, rate, deadline)
                        next_period += period
                        while next_period <= now:  # the loop fell more than a period behind: one longer period
                            next_period += period
                        continue
                    if next_arrival <= now:
                        arrival = next_arrival
                        next_arrival += 1.0 / rate
                        i = k % len(xs)
                        k += 1
                        if (now - arrival) * 1000.0 > deadline:  # stale when the server gets to it: dropped, a miss
                            iv.add(None)
                            requests.append((arrival - t0, math.nan, math.nan, catalog.index(variant), int(order[i]),
                                             ys[i], -1, True))
                            continue
                        start = clock()
                        with torch.inference_mode():
                            answer = int(model(xs[i]).argmax())
                        done = clock()
                        latency_ms = (done - arrival) * 1000.0
                        on_time = latency_ms <= deadline
                        selector.report(latency_ms, variant=variant, on_time=on_time)
                        iv.add((latency_ms, (done - start) * 1000.0, (start - arrival) * 1000.0, on_time,
                                answer == ys[i]))
                        requests.append((arrival - t0, start - t0, done - t0, catalog.index(variant), int(order[i]),
                                         ys[i], answer, False))
                        continue
                    time.sleep(max(0.0, min(next_arrival, next_period, end) - now))
        except RuntimeError as exc:  # the schedule's own report of a failed segment, at its exit
            if schedule is not None and str(exc).startswith(f"the load schedule {schedule.name} failed"):
                raise LiveError(str(exc)) from None
            raise
    except KeyboardInterrupt:
        interrupted = True
        if iv is not None and intervals_f is not None:  # the period under way, as far as it got
            try:
                monitor.read()
            except Exception:  # pragma: no cover - the log matters more than this reading
                pass
            finish(iv, variant, switched, seg)
    finally:
        term.close()
        if bar is not None:
            bar.close()
        if intervals_f is not None:
            intervals_f.close()
        monitor.inner.stop()
        if selector is not None:
            selector.close()
    cols = list(zip(*requests)) if requests else [[] for _ in REQUEST_FIELDS]
    arrays = {name: np.asarray(c, dtype=dt) for (name, dt), c in zip(REQUEST_FIELDS, cols)}
    np.savez_compressed(out / "requests.npz", **arrays, variants=np.asarray(catalog.ids))
    ctx = ("t_s", "bg_cpu_util", "bg_runnable", "mem_avail_mb", "request_rate_hz", "deadline_ms")
    if context_rows:
        atomic_write_text(out / "context.csv", trace_to_csv(
            ctx, {c: np.asarray([r[c] for r in context_rows], dtype=float) for c in ctx}))
    summary = _summary(totals, spec, policy or controller, kind, folder, schedule, duration, period, threads, seed,
                       interrupted, initial, host)
    # the intervals' segment columns follow the schedule's clock; this says where its load did not hold that clock
    summary["load_shortfalls"] = played.shortfalls() if played is not None else []
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _close(iv: _Interval, cpu_now: float, variant: str, switched: bool, status: str, seg, reading, reward,
           peak: dict[str, float], watts_per_core: float) -> dict[str, Any]:
    served = iv.served
    accuracy = iv.correct / served if served else math.nan
    on_time_frac = iv.on_time / iv.requests if iv.requests else math.nan
    cpu_s = max(cpu_now - iv.cpu0, 0.0)
    energy = cpu_s * watts_per_core
    mem = peak[variant]
    # the environment's reward from what was measured; a period without requests scores no accuracy and no miss
    r = float(reward.total(0.0 if math.isnan(accuracy) else accuracy, 1.0 if math.isnan(on_time_frac) else on_time_frac,
                           energy, mem, bool(switched), False))
    get = (lambda name: getattr(reading, name, None)) if reading is not None else (lambda name: None)

    def num(v):
        return math.nan if v is None else float(v)

    return {
        "t_s": iv.t_s, "segment": iv.segment, "busy": seg.busy if seg is not None else 0,
        "memory_mb": seg.memory_mb if seg is not None else 0, "request_rate_hz": iv.rate_hz,
        "deadline_ms": iv.deadline_ms,
        "bg_cpu_util": num(get("bg_cpu_util")), "bg_runnable": num(get("bg_runnable")),
        "mem_avail_mb": num(get("mem_avail_mb")), "freq_mhz": num(get("freq_mhz")), "cpu_util": num(get("cpu_util")),
        "variant": variant, "switched": int(bool(switched)), "selector_status": status,
        "requests": iv.requests, "served": served, "dropped": iv.dropped, "on_time": iv.on_time,
        "correct": iv.correct, "correct_on_time": iv.correct_on_time, "accuracy": accuracy,
        "on_time_frac": on_time_frac,
        "effective_accuracy": iv.correct_on_time / iv.requests if iv.requests else math.nan,
        "latency_p50_ms": _percentile(iv.latency, 50), "latency_p95_ms": _percentile(iv.latency, 95),
        "latency_mean_ms": float(np.mean(iv.latency)) if iv.latency else math.nan,
        "service_mean_ms": float(np.mean(iv.service)) if iv.service else math.nan,
        "queue_mean_ms": float(np.mean(iv.queue)) if iv.queue else math.nan,
        "cpu_s": cpu_s, "energy_j_estimate": energy, "mem_mb": mem, "reward": r,
    }


def _accumulate(totals: dict, row: dict) -> None:
    totals["return"] += row["reward"]
    totals["periods"] += 1
    totals["switches"] += row["switched"]
    for k in ("requests", "served", "dropped", "on_time", "correct", "correct_on_time"):
        totals[k] += row[k]
    if row["served"]:
        totals["latency_sum_ms"] += row["latency_mean_ms"] * row["served"]
    totals["energy_j_estimate"] += row["energy_j_estimate"]


def _context_row(row: dict) -> dict[str, float]:
    def finite(v, default):
        return default if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return {"t_s": row["t_s"], "bg_cpu_util": finite(row["bg_cpu_util"], 0.0),
            "bg_runnable": finite(row["bg_runnable"], 0.0), "mem_avail_mb": finite(row["mem_avail_mb"], 0.0),
            "request_rate_hz": row["request_rate_hz"], "deadline_ms": row["deadline_ms"]}


def _summary(t: dict, spec, controller: str, kind: str, folder: Path, schedule, duration: float, period: float,
             threads: int, seed: int, interrupted: bool, initial: str | None, host: dict | None) -> dict[str, Any]:
    import platform

    from adascale_rl.context.recorder import machine_description

    req = t["requests"]
    return {
        "env": spec.id, "env_spec": str(spec.path), "controller": controller, "kind": kind,
        "selector_folder": str(folder),
        "load": None if schedule is None else schedule.name, "duration_s": duration, "period_s": period,
        "threads": threads, "seed": seed, "interrupted": interrupted, "initial_variant": initial,
        "periods": t["periods"],
        "return": t["return"], "requests": req, "served": t["served"], "dropped": t["dropped"],
        "miss_rate": (1.0 - t["on_time"] / req) if req else math.nan,
        "accuracy": t["correct"] / t["served"] if t["served"] else math.nan,
        "effective_accuracy": t["correct_on_time"] / req if req else math.nan,
        "mean_latency_ms": t["latency_sum_ms"] / t["served"] if t["served"] else math.nan,
        "switches": t["switches"], "energy_j_estimate": t["energy_j_estimate"],
        "energy_note": "ESTIMATE: process CPU time x the profile's dynamic power per busy core; no power counter read",
        "host_speed": host,
        "machine": machine_description(), "python": platform.python_version(),
    }


def run_command(args) -> int:
    """``adascale-rl run``: arguments from :mod:`adascale_rl.cli`."""
    s = run_live(args.env, args.controller, args.out, load=args.load, duration_s=args.duration, rate_hz=args.rate,
                 deadline_ms=args.deadline, threads=args.threads, seed=args.seed, quick=args.quick,
                 progress=not args.no_progress, host_probe_s=args.host_probe)
    state = "interrupted after" if s["interrupted"] else "ran"
    print(f"{state} {s['periods']} periods of {s['env']} with {s['controller']} ({s['kind']})"
          + (f" under the load schedule {s['load']}" if s["load"] else ""))
    print(f"  return {s['return']:.2f}; requests {s['requests']}, served {s['served']}, dropped {s['dropped']}; "
          f"miss rate {s['miss_rate']:.3f}; accuracy {s['accuracy']:.3f}; effective accuracy "
          f"{s['effective_accuracy']:.3f}; mean latency {s['mean_latency_ms']:.3f} ms; switches {s['switches']}; "
          f"energy {s['energy_j_estimate']:.2f} J (estimate)")
    for note in s.get("load_shortfalls") or []:
        print(f"note: {note} (intervals.csv's segment columns give the schedule's clock)", file=sys.stderr)
    if s["host_speed"]:
        h = s["host_speed"]
        print(f"  host speed before the run: back-to-back service {h['median_ratio']:.2f}x the catalog's latency "
              f"(median of {len(h['ratios'])} variants, {min(h['ratios'].values()):.2f}-{max(h['ratios'].values()):.2f}x)")
        w = h.get("wake") or {}
        if w.get("idle_wake_ms") is not None:
            print(f"  wake-up cost at {w['rate_hz']:g} Hz: {w['idle_wake_ms']:.2f} ms + {w['idle_wake_per_ms']:.3f} x "
                  f"service (rms {w['rms_ms']:.2f} ms over {len(w['excess_ms'])} variants)"
                  + (f"; spread {w['wake_cv']:.2f} x its mean" if w.get("wake_cv") is not None else ""))
        elif w:
            print(f"  wake-up cost at {w['rate_hz']:g} Hz: not measurable (too few variants sleep between requests "
                  f"at this rate, or the fit was implausible); the spec's is replayed")
    print(f"  logs in {args.out}: intervals.csv, requests.npz, context.csv (a trace for bench --traces), summary.json")
    return 130 if s["interrupted"] else 0


# --------------------------------------------------------------------------- the paired live benchmark

#: the heuristics every live benchmark runs (the learned controllers shipped for the environment join them)
LIVE_HEURISTICS = ("static-largest", "greedy", "planner")


def shipped_learned(spec) -> list[str]:
    """The environment's shipped learned controllers (``agents/<env>/<algo>/`` with a model), by folder name."""
    from adascale_rl import paths

    folder = paths.agents_dir() / spec.name
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "best_model.zip").exists() or (p / "model.zip").exists())


def bench_live(env: str, out: str | os.PathLike, *, load: str | None = None, quick: bool = False, rounds: int = 3,
               controllers: list[str] | None = None, threads: int = 1, seed: int = 0, progress: bool = True,
               command: str | None = None, sim_seeds: int = 5,
               host_probe_s: float | None = None) -> list[dict[str, Any]]:
    """Every controller through the same load schedule on the real model, interleaved in ``rounds`` rounds (a
    fresh random order per round, so that drift of the machine hits all alike); writes ``results.csv`` and
    ``results.md`` (the columns of ``bench``, 95 % CIs over rounds) and ``runs/<round>-<controller>/`` (each
    run's logs), then the sim-to-real report of the runs (:func:`adascale_rl.evaluation.sim2real.sim2real`,
    ``sim_seeds`` simulator seeds per run). Default schedule: ``live-quick`` with ``quick``, else
    ``quiet-to-oversubscribed``. Every run starts with ``host_probe_s`` seconds of the host-speed probe
    (default :data:`HOST_PROBE_S`, a third of it with ``quick``; 0: none)."""
    from adascale_rl.context.load import LoadSchedule
    from adascale_rl.evaluation.core import ci95
    from adascale_rl.evaluation.report import machine, vs_largest, write_csv

    if rounds < 1:
        raise LiveError(f"--rounds must be at least 1, not {rounds}")
    if host_probe_s is None:
        host_probe_s = HOST_PROBE_S / 3 if quick else HOST_PROBE_S
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LiveError(f"--out {out} is a file; give a folder")
    schedule = LoadSchedule.load(load or ("live-quick" if quick else "quiet-to-oversubscribed"))
    setup = LiveSetup(env, threads=threads, seed=seed)
    spec = setup.spec
    names = list(dict.fromkeys(controllers)) if controllers else [*LIVE_HEURISTICS, *shipped_learned(spec)]
    out.mkdir(parents=True, exist_ok=True)
    folders: dict[str, tuple[Path, str]] = {}
    for name in names:  # exported (heuristics tuned) once, before any timing
        folders[name] = resolve_controller(name, spec, out / "selectors" / name.replace("/", "_"), quick=quick)
    rng = np.random.default_rng(seed)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    interrupted: KeyboardInterrupt | None = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=rounds * len(names), unit="run", desc=f"live bench {spec.name}", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        for r in range(rounds):
            for i in rng.permutation(len(names)):
                name = names[i]
                s = run_live(str(spec.path), str(folders[name][0]), out / "runs" / f"{r}-{name.replace('/', '_')}",
                             load=str(schedule.path), threads=threads, seed=seed, progress=False, setup=setup,
                             policy=name, host_probe_s=host_probe_s)
                if s["interrupted"]:
                    raise KeyboardInterrupt
                runs[name].append(s)
                if bar is not None:
                    bar.update(1)
    except KeyboardInterrupt as exc:  # the finished runs still make a table; the run cut short does not count
        interrupted = exc
    finally:
        if bar is not None:
            bar.close()
    if interrupted is not None and not any(runs.values()):
        raise interrupted
    rows = []
    for name in names:
        ss = runs[name]
        if not ss:
            continue
        kind = folders[name][1]
        rows.append({
            "env": spec.id, "policy": name, "kind": kind,
            "mean_return": float(np.mean([s["return"] for s in ss])), "ci95_return": ci95([s["return"] for s in ss]),
            "effective_accuracy": float(np.mean([s["effective_accuracy"] for s in ss])),
            "miss_rate": float(np.mean([s["miss_rate"] for s in ss])),
            "ci95_miss_rate": ci95([s["miss_rate"] for s in ss]),
            "mean_latency_ms": float(np.mean([s["mean_latency_ms"] for s in ss])),
            "energy_j": float(np.mean([s["energy_j_estimate"] for s in ss])), "oom_kills": 0.0,
            "switches": float(np.mean([s["switches"] for s in ss])), "return_vs_oracle": math.nan,
            "episodes": len(ss), "params": json.dumps({}), "env_kwargs": json.dumps({"live": schedule.name}),
        })
    largest = next((r for r in rows if r["policy"] == "static-largest"), None)
    for r in rows:
        r.update(vs_largest(r, largest))
    rows.sort(key=lambda r: -r["mean_return"])
    write_csv(rows, out / "results.csv")
    done = sum(len(v) for v in runs.values())
    note = (f"Interrupted after {done} of {rounds * len(names)} runs: the table holds the finished ones."
            if interrupted is not None else None)
    # where a run's load did not hold the schedule's clock (each run's summary.json keeps its own account)
    short = [f"{n} (run {k}): {x}" for n in names for k, s in enumerate(runs[n]) for x in s.get("load_shortfalls") or []]
    if short:
        said = "Load segments that did not hold the schedule's clock: " + "; ".join(short) + "."
        note = f"{note} {said}" if note else said
        print(f"note: {said}", file=sys.stderr)
    (out / "results.md").write_text(_live_markdown(rows, spec, schedule, rounds, machine(), command, note),
                                    encoding="utf-8")
    try:
        from adascale_rl.evaluation.plots import plot_live_timeline, plot_returns
        from adascale_rl.evaluation.sim2real import _read_intervals

        plot_returns(rows, out / "returns.png", unit="live run", ci_over="rounds")
        plot_live_timeline({n: _read_intervals(out / "runs" / f"0-{n.replace('/', '_')}" / "intervals.csv")
                            for n in names if runs[n]}, out / "timeline.png",
                           f"{spec.id}, schedule {schedule.name}: round 0 of each controller, measured")
    except Exception as exc:  # pragma: no cover - a plot must not lose the results
        print(f"adascale-rl bench --live: the plots were not drawn ({exc})", file=sys.stderr)
    if interrupted is None:  # the simulator held against the runs (an interrupted bench: adascale-rl sim2real OUT)
        from adascale_rl.evaluation.sim2real import sim2real

        sim2real(out, seeds=sim_seeds, progress=progress)
    if interrupted is not None:
        interrupted.reported = True  # the CLI's one "interrupted" line would repeat what is said here
        print(f"interrupted: {note} ({out / 'results.csv'})", file=sys.stderr)
        raise interrupted
    return rows


def _live_markdown(rows: list[dict], spec, schedule, rounds: int, machine: str, command: str | None,
                   note: str | None = None) -> str:
    def f(x, nd=3):
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"

    lines = [f"# Live benchmark: {spec.id} on this machine", "",
             f"Load schedule `{schedule.name}` ({schedule.describe()}); {rounds} interleaved rounds, each controller "
             f"once per round in a fresh random order; the real elastic model of the catalog, requests from its "
             f"data's labelled test split. Machine: {machine}."
             + (f" Command: `{command}`." if command else ""), "",
             "| policy | kind | return ± 95% CI (over rounds) | miss rate ± 95% CI | effective accuracy | "
             "mean latency ms (per request) | energy J (ESTIMATE) | switches |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['kind']} | {f(r['mean_return'], 2)} ± {f(r['ci95_return'], 2)} | "
                     f"{f(r['miss_rate'])} ± {f(r['ci95_miss_rate'])} | {f(r['effective_accuracy'])} | "
                     f"{f(r['mean_latency_ms'])} | {f(r['energy_j'], 2)} | {f(r['switches'], 1)} |")
    if note:
        lines += ["", note]
    lines += ["", "Return: the summed reward over the run's periods with the environment's weights, from what was "
                  "measured (accuracy of the served answers, on-time share of the requests, the energy estimate, the "
                  "variant's memory, switches). Energy is an ESTIMATE: process CPU time x the profile's dynamic "
                  "power per busy core; no power counter is read. Mean latency: over every request the run served "
                  "(sim2real.md's 'latency ms' is the mean of the periods' means, as the simulator's bench reports "
                  "it; the two differ where the periods serve different numbers of requests). Each run's logs: "
                  "runs/<round>-<policy>/.", ""]
    return "\n".join(lines)


def bench_live_command(args) -> int:
    """``adascale-rl bench --live``: arguments from :mod:`adascale_rl.cli`."""
    import time as _time

    from adascale_rl._files import command_line

    if args.env and len(args.env) > 1:
        raise LiveError("--live runs one environment at a time (one real model); give --env once")
    if args.traces is not None or args.env_kwargs:
        raise LiveError("--live measures on this machine: --traces and --env-kwargs are for the simulator")
    if args.seeds is not None:
        raise LiveError("--live repeats in --rounds, not --seeds")
    policies = None
    if args.policies is not None:
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        if not policies:
            raise LiveError(f"--policies {args.policies!r} names no policy")
    env = args.env[0] if args.env else "Local-Digits"
    command = command_line("adascale-rl bench --live")
    t0 = _time.perf_counter()
    bench_live(env, args.out, load=args.load, quick=args.quick, rounds=args.rounds, controllers=policies,
               progress=not args.no_progress, command=command, host_probe_s=args.host_probe)
    out = Path(args.out)
    print((out / "results.md").read_text())
    print((out / "sim2real.md").read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'results.md'}, returns.png, timeline.png, sim2real.csv, sim2real.md and each "
          f"run's logs in {out / 'runs'} "
          f"({_time.perf_counter() - t0:.0f} s)")
    from adascale_rl.environment.spec import find_spec

    spec = find_spec(env)
    now = out / "now"
    print(f"sim2real replayed the runs in {spec.path or spec.id}'s constants, each run at the host speed and wake-up "
          f"cost its probe measured; to replay them against a calibration of this machine as it is now, all of its "
          f"constants (docs/LIVE.md, \"Recalibrate\"): adascale-rl calibrate --env {env} --out {now} && adascale-rl "
          f"sim2real {out} --env {now / spec.file_name} --host-speed spec --out {now}")
    return 0
