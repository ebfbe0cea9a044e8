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

Nothing in an exported folder can run code: JSON, ``.npz`` read with
``allow_pickle=False`` after its headers are checked, and ONNX; schema, shapes and
sha256 are checked before anything is used. This module imports numpy, psutil, yaml and
the package's numpy modules, never torch, Stable-Baselines3 or Gymnasium.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from adascale_rl.environment.actions import KEEP, target_of
from adascale_rl.environment.observation import FEATURES, N_CONTEXT, Feedback
from adascale_rl.runtime import schema

log = logging.getLogger("adascale_rl.runtime")

#: where the selector reads each observation field (written into selector.json with the fields)
READ_FROM = {
    "clock_frac": "Monitor: Reading.freq_mhz (current clock) / device f_max_mhz",
    "clock_missing": "Monitor: Reading.freq_mhz is None",
    "bg_cpu_util": "Monitor: Reading.bg_cpu_util (other processes' CPU share since the last decision)",
    "bg_runnable_per_core": "Monitor: Reading.bg_runnable (run-queue sampler mean) / device cores",
    "mem_avail_frac": "Monitor: Reading.mem_avail_mb / device mem_total_mb",
    "mem_fit_largest": "Monitor: Reading.mem_avail_mb / (2 x largest variant peak)",
    "battery_frac": "Monitor: Reading.battery_pct / 100",
    "battery_missing": "Monitor: Reading.battery_pct is None",
    "plugged": "Monitor: Reading.plugged",
    "temp_headroom": "Monitor: Reading.soc_temp_c against device throttle_c",
    "temp_missing": "Monitor: Reading.soc_temp_c is None",
    "deadline_log": "app: Selector.set_mode(deadline_ms=...)",
    "load_log": "app: Selector.set_mode(rate_hz=...)",
    "last_latency_log": "app: mean of Selector.report(latency_ms) over the last period",
    "last_slowdown_log": "app: mean reported latency / catalog latency of the variant that ran",
    "slowdown_ema_log": "app: running mean (weight 0.5) of log2(mean reported latency / the performance model's "
                        "prediction for the measured clock, run queue and rate)",
    "last_miss_rate": "app: 1 - reports within the deadline / requests issued (rate x period)",
    "last_energy_frac": "app: Selector.report(energy_mj=...) if given, else the performance model's energy "
                        "per inference at the measured clock, over the device's dynamic power budget x period",
    "last_switched": "selector: the variant changed at the last decision",
    "last_oom": "app: Selector.report_oom() during the last period",
}
#: the context fields a decision cannot do without: masks and the policy need them (the others have a missing flag)
REQUIRED = ("bg_cpu_util", "mem_avail_mb")
#: weight of the newest measurement in the slow-down average (the environment's SLOWDOWN_EMA_WEIGHT)
SLOWDOWN_EMA_WEIGHT = 0.5
#: a policy.npz larger than this is refused before it is read (the shipped ones are ~100 kB)
MAX_NPZ_BYTES = 64 * 2**20
BACKENDS = ("numpy", "onnxruntime")


class FolderError(ValueError):
    """An exported folder the selector will not use; the message names the file and the cause."""


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
        self._period_rate: float | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, folder: str | os.PathLike, *, backend: str = "numpy", fallback: str | None = None,
             fallback_margin: float | None = None, initial: str | None = None, pid: int | None = None,
             monitor: Any = None, logger: logging.Logger | None = None) -> "Selector":
        """The selector of an exported folder. Never raises: a folder it cannot use gives a selector that
        returns the fallback variant (:attr:`status` and one warning say why).

        ``backend``: ``"numpy"`` (default) or ``"onnxruntime"`` (falls back to numpy, with a warning, where
        ONNX Runtime is not installed or cannot run the graph). ``fallback``: a variant id to use instead of
        the rule (also the only choice when not even selector.json can be read). ``fallback_margin``: the
        rule's margin on profiled latency (default selector.json's, 1.5). ``initial``: the variant the app
        runs at start (default: the fallback rule's). ``pid``: the app's process, whose CPU use is not
        background load (default: this process). ``monitor``: a context reader with ``read()`` returning a
        :class:`~adascale_rl.context.monitor.Reading` (default: a Monitor with its run-queue sampler).
        """
        self = cls()
        if logger is not None:
            self._warn.logger = logger
        self.fallback_variant = fallback
        if fallback_margin is not None:
            self.fallback_margin = float(fallback_margin)
        try:
            self._load(Path(folder), backend, initial, pid, monitor)
        except Exception as exc:  # never take the app down: serve the fallback instead
            self.load_error = _describe(exc)
            self._decide = None
            self.variant = self._fallback_choice(quiet=True)
            serve = (f"serving the fallback variant {self.variant}" if self.variant is not None else
                     "no catalog to fall back on and no fallback= variant: select() returns None")
            self._warn.warn("load", f"{self.load_error}; {serve}")
            self.doc = None
            self.close()
        return self

    def _load(self, folder: Path, backend: str, initial: str | None, pid: int | None, monitor: Any) -> None:
        self.folder = folder
        path = folder / schema.SELECTOR_JSON
        if not path.is_file():
            raise FolderError(f"{path} is missing (not an exported folder)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FolderError(f"{path} cannot be read as JSON ({exc})") from None
        self._catalog_from(raw)  # the fallback rule needs only the catalog, even from a document we refuse
        doc = schema.validate(raw)
        self.doc = doc
        self.period_s = float(doc["env"]["period_s"])
        if "fallback" in doc and self.fallback_margin == schema.DEFAULT_FALLBACK_MARGIN:
            self.fallback_margin = float(doc["fallback"]["margin"])
        self._check_layout(doc)
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
            self._decide = self._network(folder, doc, backend)
        else:
            self._decide = self._heuristic(policy)
        self._start_monitor(pid, monitor)

    def _catalog_from(self, raw: Any) -> None:
        from adascale_rl.device.catalog import validate as validate_catalog

        try:
            cat = validate_catalog(raw["catalog"], source="selector.json catalog")
        except Exception:
            return
        self.catalog = cat
        self.ids = cat.ids
        self._lat = cat.column("latency_ms")
        self._acc = cat.column("accuracy")
        if self.fallback_variant is not None and self.fallback_variant not in self.ids:
            self._warn.warn("fallback-id", f"fallback={self.fallback_variant!r} is not a variant of the catalog "
                                           f"({', '.join(self.ids)}); using the fallback rule", fallback=False)
            self.fallback_variant = None

    def _check_layout(self, doc: dict) -> None:
        from adascale_rl.device.catalog import validate as validate_catalog

        self.catalog = validate_catalog(doc["catalog"], source="selector.json catalog")
        n = len(self.catalog)
        names = [f["name"] for f in doc["observation"]["fields"]]
        want = [f.name for f in FEATURES] + [f"loaded={v.id}" for v in self.catalog.variants]
        if names != want:
            diff = next(i for i, (a, b) in enumerate(zip(names + [""] * len(want), want + [""] * len(names)))
                        if a != b)
            raise FolderError(f"selector.json observation.fields[{diff}] is {names[diff] if diff < len(names) else None!r}"
                              f" where this adascale-rl reads {want[diff] if diff < len(want) else None!r}: the "
                              f"observation layout of another version (export again)")
        if [v["id"] for v in doc["variants"]] != self.catalog.ids or len(doc["actions"]) != n + 1:
            raise FolderError("selector.json variants or actions do not match its catalog")

    def _build_model(self, doc: dict) -> None:
        from adascale_rl.device.physics import DevicePhysics
        from adascale_rl.device.presets import parse_preset
        from adascale_rl.environment.observation import ObservationEncoder
        from adascale_rl.environment.reward import make_reward

        self.device = parse_preset(doc["device"], "selector.json device")
        self.encoder = ObservationEncoder(self.device, self.catalog, self.period_s)
        if self.encoder.size != doc["observation"]["size"]:
            raise FolderError(f"selector.json observation.size is {doc['observation']['size']}, the encoder "
                              f"makes {self.encoder.size}")
        self.physics = DevicePhysics(self.device, self.catalog)
        self.reward_fn = make_reward({"preset": "balanced", **{k: v for k, v in doc["env"]["reward_weights"].items()
                                                                 if k != "name"}})
        self.reward = self.reward_fn.scaled(self.device.energy_budget_j(self.period_s), self.device.mem_total_mb)
        cat = self.catalog
        self._peak = cat.column("peak_mem_mb")
        self._overhead = float(cat.runtime_overhead_mb)
        self._obs = np.zeros(self.encoder.size, dtype=np.float32)
        self._mask = np.ones(len(cat) + 1, dtype=bool)
        self._slow_ema = 0.0
        self._killed = False
        self._switched = False
        self._feedback: Feedback | None = None
        self._info: dict = {}
        self._period = _Period(self._now())
        self._period_rate: float | None = None

    def _read_npz(self, path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        """The arrays of policy.npz, after checking every member's header (name, dtype, shape) without reading
        data: no pickled object is ever loaded, nothing larger than declared is allocated."""
        if path.stat().st_size > MAX_NPZ_BYTES:
            raise FolderError(f"{path} is larger than {MAX_NPZ_BYTES >> 20} MB")
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                    if name not in expected:
                        raise FolderError(f"{path} holds an unexpected array {info.filename!r}")
                    with zf.open(info) as fh:
                        shape, _, dtype = _npy_header(fh, path, name)
                    if dtype.hasobject:
                        raise FolderError(f"{path} holds pickled Python objects in {name!r} (refused: loading "
                                          f"them could run code)")
                    if dtype.kind not in "fbi":
                        raise FolderError(f"{path}: array {name!r} has dtype {dtype}, not a number")
                    want = expected[name]
                    if tuple(shape) != want and want != ():
                        raise FolderError(f"{path}: array {name!r} has shape {tuple(shape)}, expected {want}")
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FolderError(f"{path} is not a readable .npz ({exc})") from None
        missing = sorted(set(expected) - set(arrays))
        if missing:
            raise FolderError(f"{path} lacks the array(s) {', '.join(missing)}")
        for k, a in arrays.items():
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise FolderError(f"{path}: array {k!r} holds NaN or infinity")
        return arrays

    def _verify(self, folder: Path, name: str) -> Path:
        path = folder / name
        if not path.is_file():
            raise FolderError(f"{path} is missing")
        want = self.doc["files"].get(name)
        if want is None:
            raise FolderError(f"selector.json lists no sha256 for {name}")
        got = schema.sha256_file(path)
        if got != want:
            raise FolderError(f"{path} does not match its sha256 in selector.json (tampered with or damaged: "
                              f"{got[:12]}... instead of {want[:12]}...)")
        return path

    def _network(self, folder: Path, doc: dict, backend: str) -> Callable:
        from adascale_rl.runtime.numpy_policy import NumpyPolicy, array_shapes

        if backend not in BACKENDS:
            raise FolderError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        n_actions = len(self.catalog) + 1
        size = self.encoder.size
        expected = array_shapes(doc["policy"], size, n_actions)
        for name in doc["files"]:  # a folder is refused as a whole if any file it lists was changed
            if name != schema.POLICY_NPZ and (folder / name).exists():
                self._verify(folder, name)
        npz = self._verify(folder, schema.POLICY_NPZ)
        k_check = None
        try:
            with zipfile.ZipFile(npz) as zf:
                if "check_obs.npy" in zf.namelist():
                    with zf.open("check_obs.npy") as fh:
                        shape = _npy_header(fh, npz, "check_obs")[0]
                    k_check = int(shape[0]) if len(shape) == 2 else None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FolderError(f"{npz} is not a readable .npz ({exc})") from None
        if k_check is None:
            raise FolderError(f"{npz} has no check decisions (check_obs)")
        expected.update({"check_obs": (k_check, size), "check_mask": (k_check, n_actions),
                         "check_action": (k_check,), "check_logits": (k_check, n_actions)})
        arrays = self._read_npz(npz, expected)
        policy = NumpyPolicy(doc["policy"], arrays, size, n_actions)
        policy.compile(arrays["check_obs"][0])
        self.backend = "numpy"
        decide = policy
        if backend == "onnxruntime":
            decide = self._onnx(folder) or policy
        self._self_test(decide, arrays)
        self._numpy_policy = policy
        return lambda obs, mask: decide(obs, mask)[0]

    def _onnx(self, folder: Path) -> Callable | None:
        try:
            import onnxruntime as ort
        except ImportError:
            self._warn.warn("ort-missing", "onnxruntime is not installed; using the numpy forward", fallback=False)
            return None
        path = self._verify(folder, schema.POLICY_ONNX)
        try:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            self._warn.warn("ort-load", f"ONNX Runtime cannot load {path} ({_describe(exc)}); using the numpy "
                                        f"forward", fallback=False)
            return None
        obs_buf = np.zeros((1, self.encoder.size), dtype=np.float32)
        mask_buf = np.ones((1, len(self.catalog) + 1), dtype=bool)

        def run(obs, mask):
            obs_buf[0] = obs
            mask_buf[0] = True if mask is None else mask
            action, logits = sess.run(None, {"observation": obs_buf, "action_mask": mask_buf})
            return int(action[0]), logits[0]

        self.backend = "onnxruntime"
        return run

    def _self_test(self, decide: Callable, arrays: dict) -> None:
        """The folder's own check decisions, replayed: another version's math, or a damaged file, shows here."""
        logits_ref = arrays["check_logits"]
        scale = schema.logit_scale(logits_ref)
        loaded = np.argmax(arrays["check_obs"][:, N_CONTEXT:], axis=1)
        for i, (o, m) in enumerate(zip(arrays["check_obs"], arrays["check_mask"])):
            action, logits = decide(o, m)
            agree = schema.decisions_agree([action], arrays["check_action"][i:i + 1], logits_ref[i:i + 1],
                                           loaded[i:i + 1])[0]
            if not agree or not np.all(
                    np.abs(np.asarray(logits, dtype=np.float64) - logits_ref[i]) <= schema.LOGIT_RTOL * scale[i]):
                raise FolderError(f"the policy does not reproduce its own check decision {i} on this machine "
                                  f"(exported by adascale-rl {self.doc['adascale_rl_version']}, this is "
                                  f"{_version()}; export again)")

    def _heuristic(self, policy: dict) -> Callable:
        from adascale_rl.policies.heuristics import HEURISTICS

        h = HEURISTICS[policy["name"]]()
        for k, v in policy["params"].items():
            if not hasattr(h, k):
                raise FolderError(f"heuristic {policy['name']!r} has no parameter {k!r}")
            setattr(h, k, v)
        view = SimpleNamespace(catalog=self.catalog, device=self.device, encoder=self.encoder,
                               reward_fn=self.reward_fn, reward=self.reward, period_s=self.period_s)
        h.reset(view)
        self.backend = "heuristic"
        return lambda obs, mask: int(h.act(obs, {**self._info, "action_mask": mask}))

    def _start_monitor(self, pid: int | None, monitor: Any) -> None:
        if monitor is not None:
            self._monitor = monitor
            return
        self._own_monitor = True
        from adascale_rl.context.monitor import RUNNABLE_HZ

        self._monitor = _selector_monitor_class()(pid, runnable_hz=RUNNABLE_HZ)
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
                self._period_rate = self.rate_hz  # the rate of the period under way, for its miss rate

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
        if not np.all(np.isfinite(obs)):
            raise _Fallback("nan:observation", "the observation holds NaN")
        mask = self._mask
        resident = 0.0 if self._killed else self._peak[loaded] - self._overhead
        np.less_equal(self._peak + resident, r.mem_avail_mb, out=mask[1:])
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
                predicted = self.physics.expected_latency_ms(ran, f, b, rate or 10.0)
                self._slow_ema += SLOWDOWN_EMA_WEIGHT * (math.log2(mean / predicted) - self._slow_ema)
            self._feedback = Feedback(mean, ran, min(max(miss, 0.0), 1.0), energy_j, self._switched, p.oom,
                                      self._slow_ema)
            self._killed = p.oom
            self._info = {"latency_ms": mean, "variant": self.ids[ran], "oom": p.oom,
                          "served_frac": p.served / issued if issued > 0 else 1.0, "miss_rate": miss}
        self._loaded = ran
        self._period = _Period(now)
        self._period_rate = self.rate_hz

    def _energy_per_inference_j(self, variant: int, freq_mhz: float) -> float:
        """The performance model's dynamic energy of one inference at this clock (device/model.py, 'energy')."""
        from adascale_rl.device.model import clock_factor

        t = self.physics.table
        fk = (freq_mhz / t.f_max_mhz) ** t.freq_exponent
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


def _npy_header(fh, path: Path, name: str) -> tuple:
    """(shape, fortran order, dtype) from the header of one .npy member, without reading its data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fh)
        if version == (2, 0):
            return fmt.read_array_header_2_0(fh)
    except ValueError as exc:
        raise FolderError(f"{path}: array {name!r} has no valid .npy header ({exc})") from None
    raise FolderError(f"{path}: array {name!r} is in .npy format {version}, not 1.0 or 2.0")


class _Fallback(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip()
    if isinstance(exc, (FolderError, schema.SelectorFormatError)):
        return msg
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _version() -> str:
    import adascale_rl

    return adascale_rl.__version__


#: seconds between two looks for a sensor the machine did not have (temperature, battery) or for new cpufreq
#: policies: what the monitor scans to find them costs ~0.1-0.2 ms a decision on a machine without them
RESCAN_S = 30.0


def _selector_monitor_class():
    from adascale_rl.context.monitor import Monitor

    class SelectorMonitor(Monitor):
        """The recorder's monitor (the same readings), tuned for a read every decision: no clock cap (the
        observation holds the measured clock, the cap is a second cpufreq walk), the cpufreq folders listed
        once per :data:`RESCAN_S`, and a temperature or battery sensor the machine lacks looked for again only
        every :data:`RESCAN_S` (until then it stays missing, as the observation's flag says)."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self._dirs: tuple[float, list] = (-math.inf, [])
            self._absent: dict[str, float] = {}

        def freq_cap_mhz(self) -> float | None:
            return None

        def _cpufreq_dirs(self):
            t, dirs = self._dirs
            now = time.monotonic()
            if now - t > RESCAN_S:
                dirs = super()._cpufreq_dirs()
                self._dirs = (now, dirs)
            return dirs

        def _unless_absent(self, name: str, read: Callable, missing: Any):
            since = self._absent.get(name)
            if since is not None and time.monotonic() - since < RESCAN_S:
                return missing
            value = read()
            if value == missing:
                self._absent[name] = time.monotonic()
            else:
                self._absent.pop(name, None)
            return value

        def soc_temp_c(self) -> float | None:
            return self._unless_absent("temp", super().soc_temp_c, None)

        def battery(self):
            return self._unless_absent("battery", super().battery, (None, None))

    return SelectorMonitor
