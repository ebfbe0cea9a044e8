"""The on-device selector: which variant should the app run now?

::

    from adascale_rl.runtime import Selector

    selector = Selector.load("exported/")          # a folder written by ``adascale-rl export``
    selector.set_mode(rate_hz=15, deadline_ms=80)   # the app's mode, whenever it changes
    while running:                                  # once per decision period (selector.period_s)
        variant = selector.select()                 # a catalog variant id
        for frame in frames_of_this_period:
            t0 = time.perf_counter(); model[variant](frame)
            selector.report((time.perf_counter() - t0) * 1000)

:meth:`Selector.select` reads the live context with the monitor ``adascale-rl record`` uses
(:class:`adascale_rl.context.monitor.Monitor`, psutil, with its run-queue sampler), builds
the observation as the environment does (the shared
:class:`~adascale_rl.environment.observation.ObservationEncoder`; the feedback fields from
what :meth:`Selector.report` heard during the period, the slow-down against the same
performance model), masks the switches whose memory peak does not fit, and runs the
exported policy: the numpy forward (always available) or ONNX Runtime (``backend=
"onnxruntime"``, optional), or the heuristic the folder names. :meth:`Selector.start`
runs that loop in a thread and calls the app back when the decision changes.

It never takes the app down. A folder that is missing, corrupt, tampered with (sha256),
from another format version, or whose policy does not reproduce its own check decisions;
a context field the machine cannot read; a sensor that raises; a NaN anywhere; an error
inside the policy: each makes :meth:`select` return the fallback variant (by default the
most accurate variant whose profiled latency times a margin fits min(deadline, 1 / rate),
the fastest before a mode is set; ``fallback=`` fixes one) and logs one warning naming the
cause (once per cause, on the ``adascale_rl.runtime`` logger); the selector keeps serving
and returns to the policy when the cause goes away. :attr:`Selector.status` says which.
A folder exported on an earlier version of the environments' dynamics whose check decisions
replay keeps its policy, with one warning (the predictions are this version's).

Nothing in an exported folder can run code: JSON, ``.npz`` read with
``allow_pickle=False`` after its headers are checked, and ONNX; schema, shapes and
sha256 are checked before anything is used. This module imports numpy, psutil, yaml and
the package's numpy modules, never torch, Stable-Baselines3 or Gymnasium.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from adascale_rl.context.schema import DEFAULTS
from adascale_rl.device.model import clock_factor, freq_factor
from adascale_rl.environment.actions import KEEP, target_of
from adascale_rl.environment import spec
from adascale_rl.environment.observation import SLOWDOWN_EMA_WEIGHT, Feedback
from adascale_rl.runtime import schema
from adascale_rl.runtime.folder import (BACKENDS, FolderError, catalog_of, check_layout, heuristic, heuristic_view,
                                        network, read_document)
from adascale_rl.runtime.live import REQUIRED

log = logging.getLogger("adascale_rl.runtime")



@dataclass
class _Period:
    """What the app reported since the last decision."""

    started_s: float
    served: int = 0
    latency_sum_ms: float = 0.0
    on_time: int = 0
    energy_mj: float = 0.0
    energy_reports: int = 0
    oom: bool = False
    variant: int | None = None


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _Once:
    """Logs one warning per cause; remembers the current cause for :attr:`Selector.status`."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.seen: set[str] = set()
        self.cause: str | None = None

    def warn(self, key: str, message: str, fallback: bool = True) -> None:
        if fallback:
            self.cause = message
        if key not in self.seen:
            self.seen.add(key)
            self.logger.warning("adascale_rl selector: %s", message)


class Selector:
    """Chooses the variant of the app's elastic model from the live context (see the module doc).

    Create it with :meth:`load`. Thread-safe: :meth:`report` may come from the inference
    thread while :meth:`select` runs elsewhere.
    """

    def __init__(self):  # use Selector.load
        self._lock = threading.RLock()
        self._warn = _Once(log)
        self.folder: Path | None = None
        self.doc: dict | None = None
        self.ids: list[str] = []
        self._lat = np.zeros(0)
        self._acc = np.zeros(0)
        self.backend: str | None = None
        self.period_s = 1.0
        self.rate_hz: float | None = None
        self.deadline_ms: float | None = None
        self.fallback_variant: str | None = None
        self.fallback_margin = schema.DEFAULT_FALLBACK_MARGIN
        self.load_error: str | None = None
        self.variant: str | None = None
        self._decide: Callable | None = None
        self._monitor = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._now: Callable[[], float] = time.monotonic  # the period's clock (tests replace it)
        self._own_monitor = False
        self._margin_given = False
        self._period_rate: float | None = None
        self._period_deadline: float | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, folder: str | os.PathLike, *, backend: str = "numpy", fallback: str | None = None,
             fallback_margin: float | None = None, initial: str | None = None, pid: int | None = None,
             monitor: Any = None, logger: logging.Logger | None = None) -> "Selector":
        """The selector of an exported folder. Never raises for the folder or the device: a folder it cannot use
        gives a selector that returns the fallback variant (:attr:`status` and one warning say why). An argument
        no folder could make valid (a ``backend`` other than the two, a ``fallback_margin`` that is not a positive
        number) is the app's bug, not the device's: ``ValueError`` at once, where its developer sees it.

        ``backend``: ``"numpy"`` (default) or ``"onnxruntime"`` (falls back to numpy, with a warning, where
        ONNX Runtime is not installed or cannot run the graph). ``fallback``: a variant id to use instead of
        the rule (also the only choice when not even selector.json can be read). ``fallback_margin``: the
        rule's margin on profiled latency (default selector.json's, 1.5). ``initial``: the variant the app
        runs at start (default: the fallback rule's). ``pid``: the app's process, whose CPU use is not
        background load (default: this process). ``monitor``: a context reader with ``read()`` returning a
        :class:`~adascale_rl.context.monitor.Reading` (default: a Monitor with its run-queue sampler).
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: one of {', '.join(map(repr, BACKENDS))}")
        if fallback_margin is not None:
            try:
                fallback_margin = float(fallback_margin)
            except (TypeError, ValueError):
                fallback_margin = math.nan
            if not 0.0 < fallback_margin < math.inf:
                raise ValueError(f"fallback_margin must be a positive number (profiled latency x margin within the "
                                 f"deadline), not {fallback_margin!r}")
        self = cls()
        if logger is not None:
            self._warn.logger = logger
        self.fallback_variant = fallback
        if fallback_margin is not None:
            self.fallback_margin = fallback_margin
            self._margin_given = True
        try:
            # a damaged number overflows somewhere in the tables, the compiled forward or the check decisions: the
            # checks refuse the folder below, with one warning, and numpy says nothing of its own
            with np.errstate(all="ignore"):
                self._load(Path(folder), backend, initial, pid, monitor)
        except Exception as exc:  # never take the app down: serve the fallback instead
            self.load_error = _describe(exc)
            self._decide = None
            self.variant = self._fallback_choice(quiet=True)
            if self.variant is None:
                serve = "no catalog to fall back on and no fallback= variant: select() returns None"
            elif fallback is not None:
                serve = f"serving the fallback variant {self.variant}"
            else:  # the rule's choice moves with the app's deadline (set_mode)
                serve = (f"serving the fallback rule's variant (the most accurate whose profiled latency x "
                         f"{self.fallback_margin:g} meets the deadline; {self.variant} until set_mode gives one)")
            self._warn.warn("load", f"{self.load_error}; {serve}")
            self.doc = None
            self.close()
        return self

    def _load(self, folder: Path, backend: str, initial: str | None, pid: int | None, monitor: Any) -> None:
        self.folder = folder
        raw = read_document(folder)
        catalog = catalog_of(raw)  # the fallback rule needs only the catalog, even from a document we refuse
        if catalog is not None:
            self._set_catalog(catalog)
        doc = schema.validate(raw)
        self.doc = doc
        self.period_s = float(doc["env"]["period_s"])
        if not self._margin_given:
            self.fallback_margin = float(doc["fallback"]["margin"])
        self._set_catalog(catalog_of(doc))
        check_layout(doc, self.catalog)
        self._build_model(doc)
        if initial is not None:
            if initial not in self.ids:
                raise FolderError(f"initial variant {initial!r} is not in the catalog ({', '.join(self.ids)})")
            self._loaded = self.ids.index(initial)
        else:
            self._loaded = self.ids.index(self._fallback_choice())
        self.variant = self.ids[self._loaded]
        policy = doc["policy"]
        if policy["kind"] == "network":
            decide, self._numpy_policy, self.backend = network(folder, doc, self.encoder.size, len(self.ids) + 1,
                                                               backend, self._warn.warn)
        else:
            view = heuristic_view(doc, self.catalog, self.device, self.encoder)
            decide, self.backend = heuristic(policy, view, lambda: self._info), "heuristic"
        self._decide = lambda obs, mask: decide(obs, mask)[0]
        self._note_dynamics(doc["env"]["id"])
        self._start_monitor(pid, monitor)

    def _note_dynamics(self, env_id: str) -> None:
        """One warning (the policy keeps deciding) when the folder was exported on another version of the
        environments' dynamics than this package computes: the prior's and the heuristics' predictions and the
        slow-down feature are this version's. The folder's check decisions replayed, so they did not change any
        of those; a new export says for sure."""
        version = spec.env_version(str(env_id))
        if version is None or version == spec.VERSION:
            return
        current = spec.id_for(spec.env_name(env_id))
        self._warn.warn("dynamics", f"exported on {env_id}; this adascale-rl predicts with the dynamics of "
                                    f"{current} (the folder's check decisions replay, so the policy serves; "
                                    f"export it again to match)", fallback=False)

    def _set_catalog(self, cat: Any) -> None:
        self.catalog = cat
        self.ids = cat.ids
        self._lat = cat.column("latency_ms")
        self._acc = cat.column("accuracy")
        if self.fallback_variant is not None and self.fallback_variant not in self.ids:
            self._warn.warn("fallback-id", f"fallback={self.fallback_variant!r} is not a variant of the catalog "
                                           f"({', '.join(self.ids)}); using the fallback rule", fallback=False)
            self.fallback_variant = None

    def _build_model(self, doc: dict) -> None:
        from adascale_rl.device.physics import DevicePhysics
        from adascale_rl.device.presets import parse_preset
        from adascale_rl.environment.observation import ObservationEncoder

        self.device = parse_preset(doc["device"], "selector.json device")
        self.encoder = ObservationEncoder(self.device, self.catalog, self.period_s)
        if self.encoder.size != doc["observation"]["size"]:
            raise FolderError(f"selector.json observation.size is {doc['observation']['size']}, the encoder "
                              f"makes {self.encoder.size}")
        self.physics = DevicePhysics(self.device, self.catalog)
        cat = self.catalog
        self._peak = cat.column("peak_mem_mb")
        self._overhead = float(cat.runtime_overhead_mb)
        self._obs = np.zeros(self.encoder.size, dtype=np.float32)
        self._mask = np.ones(len(cat) + 1, dtype=bool)
        self._mask_variants = self._mask[1:]  # the switches, a view made once
        self._need_mb = np.zeros(len(cat))
        self._slow_ema = 0.0
        self._killed = False
        self._switched = False
        self._feedback: Feedback | None = None
        self._info: dict = {}
        self._period = _Period(self._now())
        self._period_rate: float | None = None
        self._period_deadline: float | None = None

    def _start_monitor(self, pid: int | None, monitor: Any) -> None:
        if monitor is not None:
            self._monitor = monitor
            return
        self._own_monitor = True
        from adascale_rl.runtime.live import SelectorMonitor

        self._monitor = SelectorMonitor(pid)
        self._monitor.start()
        self._monitor.read()  # the first CPU interval starts now

    # ------------------------------------------------------------------ the app's side
    @property
    def status(self) -> str:
        """``"ok"`` while the policy decides, else the cause the fallback is served for."""
        if self.load_error is not None:
            return self.load_error
        return "ok" if self._warn.cause is None else self._warn.cause

    @property
    def variants(self) -> list[str]:
        """The catalog's variant ids (empty if not even the catalog could be read)."""
        return list(self.ids)

    def set_mode(self, rate_hz: float | None = None, deadline_ms: float | None = None) -> None:
        """The app's request rate and deadline from now on (either may be given alone)."""
        with self._lock:
            for name, v in (("rate_hz", rate_hz), ("deadline_ms", deadline_ms)):
                if v is None:
                    continue
                if not _finite(v) or v <= 0:
                    self._warn.warn(f"mode-{name}", f"set_mode({name}={v!r}) ignored: not a positive number",
                                    fallback=False)
                    continue
                setattr(self, name, float(v))
            if self._decide is not None and self._period_rate is None:
                # the mode of the period under way, for its miss rate and its latency prediction
                self._period_rate, self._period_deadline = self.rate_hz, self.deadline_ms

    def report(self, latency_ms: float, *, variant: str | None = None, on_time: bool | None = None,
               energy_mj: float | None = None) -> None:
        """One inference: its latency (ms), optionally which variant ran (default: the selected one), whether it
        met its deadline (default: latency within the deadline) and its measured energy (mJ)."""
        try:
            with self._lock:
                if self._decide is None:
                    return
                if not _finite(latency_ms) or latency_ms < 0:
                    self._warn.warn("report", f"report(latency_ms={latency_ms!r}) ignored: not a finite, "
                                              f"non-negative number", fallback=False)
                    return
                p = self._period
                p.served += 1
                p.latency_sum_ms += float(latency_ms)
                deadline = self.deadline_ms
                ok = on_time if on_time is not None else (deadline is None or latency_ms <= deadline)
                p.on_time += bool(ok)
                if energy_mj is not None and _finite(energy_mj) and energy_mj >= 0:
                    p.energy_mj += float(energy_mj)
                    p.energy_reports += 1
                if variant is not None:
                    if variant in self.ids:
                        p.variant = self.ids.index(variant)
                    else:
                        self._warn.warn("report-variant", f"report(variant={variant!r}) ignored: not a catalog "
                                                          f"variant", fallback=False)
        except Exception as exc:  # pragma: no cover - never raise into the app's inference loop
            self._warn.warn("report-error", f"report failed ({_describe(exc)})", fallback=False)

    def report_oom(self) -> None:
        """The app was killed for memory (or unloaded its model) this period: nothing is resident."""
        with self._lock:
            if self._decide is not None:
                self._period.oom = True

    def select(self) -> str | None:
        """The variant to run for the coming period (a catalog id; None only when not even the catalog of the
        folder could be read and no ``fallback=`` was given)."""
        with self._lock:
            if self._decide is None:  # the folder could not be used (warned once, at load)
                self.variant = self._fallback_choice(quiet=True)
                return self.variant
            try:
                choice = self._select()
                if self._warn.cause is not None:
                    log.info("adascale_rl selector: the policy decides again (%s no longer holds)", self._warn.cause)
                    self._warn.cause = None
            except _Fallback as exc:
                self._warn.warn(exc.key, f"{exc.message}; serving the fallback variant")
                choice = self.ids.index(self._fallback_choice())
            except Exception as exc:
                self._warn.warn(f"error:{type(exc).__name__}",
                                f"the decision failed ({_describe(exc)}); serving the fallback variant")
                choice = self.ids.index(self._fallback_choice())
            self._commit(choice)
            return self.variant

    __call__ = select

    def _select(self) -> int:
        try:
            r = self._monitor.read()
        except Exception as exc:
            raise _Fallback("sensor", f"reading the context failed ({_describe(exc)})") from None
        for name in REQUIRED:
            v = getattr(r, name, None)
            if v is None:
                raise _Fallback(f"missing:{name}", f"this machine cannot read {name}")
            if not _finite(v):
                raise _Fallback(f"nan:{name}", f"the context field {name} is {v!r}")
        freq, runnable, batt = r.freq_mhz, r.bg_runnable, r.battery_pct
        plugged, temp = r.plugged, r.soc_temp_c
        if isinstance(plugged, bool):
            plugged = float(plugged)
        for name, v in (("freq_mhz", freq), ("bg_runnable", runnable), ("battery_pct", batt), ("plugged", plugged),
                        ("soc_temp_c", temp)):
            if v is not None and not _finite(v):
                raise _Fallback(f"nan:{name}", f"the context field {name} is {v!r}")
        if not self.device.has_battery:
            batt = None  # as the environment observes a device without a battery
        self._close_period(freq, r.bg_cpu_util, runnable)
        loaded = self._loaded
        obs = self.encoder.encode_values(freq, r.bg_cpu_util, runnable, r.mem_avail_mb, batt, plugged, temp,
                                         self.rate_hz, self.deadline_ms, loaded, self._feedback, out=self._obs)
        # the float32 values summed as Python floats: finite unless one of them is inf or NaN (float32 numbers
        # cannot overflow a float64 sum of this length); ~4 us right after the app slept, where
        # np.all(np.isfinite(obs)) took ~40 (numpy's reduction machinery, cold)
        if not math.isfinite(sum(obs.tolist())):
            raise _Fallback("nan:observation", "the observation holds NaN")
        mask = self._mask
        resident = 0.0 if self._killed else self._peak[loaded] - self._overhead
        np.add(self._peak, resident, self._need_mb)
        np.less_equal(self._need_mb, r.mem_avail_mb, self._mask_variants)
        mask[KEEP] = True
        mask[loaded + 1] = True
        action = self._decide(obs, mask)
        if not (isinstance(action, (int, np.integer)) and 0 <= action <= len(self.ids)):
            raise _Fallback("policy-output", f"the policy returned the action {action!r}")
        if not mask[action]:
            raise _Fallback("policy-mask", f"the policy chose the masked action {action}")
        return target_of(int(action), loaded)

    def _close_period(self, freq: float | None, bg: float, runnable: float | None) -> None:
        """Turn what the app reported since the last decision into the observation's feedback fields, as the
        environment does after a step."""
        p = self._period
        now = self._now()
        ran = p.variant if p.variant is not None else self._loaded
        if p.served == 0 and not p.oom:
            # nothing ran: an observation without feedback, as at the start of an episode
            self._feedback = None
            self._killed = False
            self._info = {}
        else:
            dt = max(now - p.started_s, 1e-3)
            rate = self._period_rate or self.rate_hz
            issued = max(float(p.served), rate * dt if rate else 0.0)
            mean = p.latency_sum_ms / p.served if p.served else 0.0
            miss = 1.0 - p.on_time / issued if issued > 0 else 0.0
            f = freq if freq is not None else self.device.f_max_mhz
            b = runnable if runnable is not None else bg * self.device.cores
            if p.energy_reports == p.served and p.served:
                energy_j = p.energy_mj * 1e-3
            else:
                energy_j = p.served * self._energy_per_inference_j(ran, f)
            if not p.oom and p.served > 0 and mean > 0:
                deadline = self._period_deadline or self.deadline_ms
                predicted = self.physics.expected_latency_ms(ran, f, b, rate or DEFAULTS["request_rate_hz"],
                                                             deadline or DEFAULTS["deadline_ms"])
                self._slow_ema += SLOWDOWN_EMA_WEIGHT * (math.log2(mean / predicted) - self._slow_ema)
            self._feedback = Feedback(mean, ran, min(max(miss, 0.0), 1.0), energy_j, self._switched, p.oom,
                                      self._slow_ema)
            self._killed = p.oom
            self._info = {"latency_ms": mean, "variant": self.ids[ran], "oom": p.oom,
                          "served_frac": p.served / issued if issued > 0 else 1.0, "miss_rate": miss}
        self._loaded = ran
        self._period = _Period(now)
        self._period_rate, self._period_deadline = self.rate_hz, self.deadline_ms

    def _energy_per_inference_j(self, variant: int, freq_mhz: float) -> float:
        """The performance model's dynamic energy of one inference at this clock (device/model.py, 'energy')."""
        t = self.physics.table
        fk = freq_factor(t, freq_mhz)
        cf = clock_factor(t.compute_bound_frac[variant], freq_mhz, t.f_max_mhz)
        return float(t.energy_mj[variant] * 1e-3 * fk * cf)

    def _commit(self, choice: int) -> None:
        if self._decide is not None:
            self._switched = choice != self._loaded
            self._loaded = choice
        self.variant = self.ids[choice]

    # ------------------------------------------------------------------ the fallback
    def _fallback_choice(self, quiet: bool = False) -> str | None:
        """The fixed ``fallback=`` variant, else the most accurate variant whose profiled latency x margin fits
        min(deadline, 1 / rate) (ties: the faster), else the fastest; None without a catalog."""
        if self.fallback_variant is not None:
            return self.fallback_variant
        if not self.ids:
            if not quiet:
                self._warn.warn("no-catalog", "no catalog and no fallback= variant: select() returns None")
            return None
        lat, acc = self._lat, self._acc
        fastest = min(range(len(lat)), key=lambda i: (lat[i], -acc[i]))
        budget = None
        if self.deadline_ms is not None:
            budget = self.deadline_ms
        if self.rate_hz is not None:
            budget = min(budget if budget is not None else math.inf, 1000.0 / self.rate_hz)
        if budget is None:
            return self.ids[fastest]
        fits = [i for i in range(len(lat)) if lat[i] * self.fallback_margin <= budget]
        if not fits:
            return self.ids[fastest]
        return self.ids[max(fits, key=lambda i: (acc[i], -lat[i]))]

    # ------------------------------------------------------------------ callback form
    def start(self, on_change: Callable[[str], Any] | None = None, *, period_s: float | None = None) -> "Selector":
        """Decide every ``period_s`` (default the environment's period) in a daemon thread; call
        ``on_change(variant)`` at the first decision and whenever it changes. The app keeps calling
        :meth:`report` from its own loop and may read :attr:`variant` at any time. :meth:`stop` ends it."""
        period = float(period_s) if period_s is not None else self.period_s
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()

        def loop():
            last = None
            due = time.monotonic()
            while not self._stop.is_set():
                v = self.select()
                if v != last and on_change is not None:
                    try:
                        on_change(v)
                    except Exception as exc:  # the app's callback must not stop the loop
                        self._warn.warn("callback", f"on_change({v!r}) raised {_describe(exc)}", fallback=False)
                last = v
                due += period
                if self._stop.wait(max(due - time.monotonic(), 0.0)):
                    return

        self._thread = threading.Thread(target=loop, name="adascale-selector", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the decision thread (if started) and the monitor's sampler."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        m = self._monitor
        if m is not None and self._own_monitor:
            try:
                m.stop()
            except Exception:  # pragma: no cover
                pass

    def __enter__(self) -> "Selector":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        return f"Selector({str(self.folder)!r}, backend={self.backend!r}, status={self.status!r})"


class _Fallback(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip()
    if isinstance(exc, (FolderError, schema.SelectorFormatError)):
        return msg
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
