"""The observation encoder, declared once.

The environment, the exporter and the on-device selector all call
:meth:`ObservationEncoder.encode`, so the policy sees on the device exactly what
it saw in training. It holds only what a device can know:

* the context as last measured (one interval stale): clock, background CPU and
  run queue, available memory, battery, plugged, SoC temperature — each sensor may be
  missing (a VM has no battery, temperature or cpufreq): a missing value is
  encoded as a neutral value plus a ``*_missing`` flag, never invented;
* the app's own current request rate and deadline;
* which variant is loaded;
* last interval's feedback as the app measured it: mean latency, its ratio to what
  the app's own performance model predicted for the measured context (the slow-down the
  model does not explain), miss rate, inference energy, whether it switched and whether
  it was OOM-killed. Nothing is computed from the simulator's hidden state.

Every feature is declared in :data:`FEATURES` with its unit and scaling; all
values are clipped into the declared bounds.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import numpy as np

from adascale_rl.device.catalog import Catalog
from adascale_rl.device.presets import DevicePreset


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    low: float
    high: float
    doc: str


FEATURES: tuple[Feature, ...] = (
    Feature("clock_frac", "fraction", 0.0, 1.0, "measured clock / device top clock (1 if unreadable)"),
    Feature("clock_missing", "flag", 0.0, 1.0, "1 when the clock could not be read"),
    Feature("bg_cpu_util", "fraction", 0.0, 1.0, "CPU share used by other processes"),
    Feature("bg_runnable_per_core", "threads/core", 0.0, 4.0,
            "runnable threads of other processes / device cores (estimated as bg_cpu_util where not measured)"),
    Feature("mem_avail_frac", "fraction", 0.0, 1.0, "available memory / device total memory"),
    Feature("mem_fit_largest", "ratio/2", 0.0, 1.0, "available memory / (2 x largest variant peak), clipped"),
    Feature("battery_frac", "fraction", 0.0, 1.0, "battery charge (1 if no battery sensor)"),
    Feature("battery_missing", "flag", 0.0, 1.0, "1 when there is no battery sensor"),
    Feature("plugged", "flag", 0.0, 1.0, "on external power (1 if unknown)"),
    Feature("temp_headroom", "scaled degC", -1.0, 2.0,
            "(throttle - SoC temp) / (throttle - 25 C); 1 if no temperature sensor"),
    Feature("temp_missing", "flag", 0.0, 1.0, "1 when there is no temperature sensor"),
    Feature("deadline_log", "log2/4", -2.0, 2.0, "log2(deadline / full-model reference latency) / 4"),
    Feature("load_log", "log2/4", -3.0, 2.0, "log2(request rate x full-model reference latency) / 4"),
    Feature("last_latency_log", "log2/4", -3.0, 2.0, "log2(last mean latency / deadline) / 4; 0 before any"),
    Feature("last_slowdown_log", "log2/2", -1.0, 2.0,
            "log2(last mean latency / catalog latency of the variant that ran) / 2"),
    Feature("slowdown_ema_log", "log2/2", -1.0, 2.0,
            "exponential average (weight 0.5) of log2(measured mean latency / the performance model's prediction "
            "for the measured context) / 2: the slow-down the app's model does not explain"),
    Feature("last_miss_rate", "fraction", 0.0, 1.0, "share of last interval's requests late or dropped"),
    Feature("last_energy_frac", "fraction", 0.0, 1.0, "last inference energy / (dynamic power budget x period)"),
    Feature("last_switched", "flag", 0.0, 1.0, "1 if the app switched variant last interval"),
    Feature("last_oom", "flag", 0.0, 1.0, "1 if the app was OOM-killed last interval"),
)
N_CONTEXT = len(FEATURES)
#: index of each feature in the observation
INDEX = {f.name: i for i, f in enumerate(FEATURES)}
#: weight of the newest measurement in the app's running slow-down estimate (feature slowdown_ema_log): the
#: environment, its vector form and the on-device selector all update it with this weight
SLOWDOWN_EMA_WEIGHT = 0.5

#: the feedback features (last_*, slowdown_ema_log) start here
FEEDBACK_START = INDEX["last_latency_log"]


def decode_planning(obs, *, f_max_mhz: float, ref_ms: float, cores: float, n_variants: int, xp=None) -> dict:
    """The fields a planner reads from a batch of observations ``(B, size)``, as arrays ``(B, 1)``
    (numpy or torch, like ``obs``; ``loaded`` is ``(B, n)``): the measured clock (the top clock when
    unreadable), the background run queue, the app's rate and deadline, the running slow-down
    factor, the loaded variant one-hot and whether the app was OOM-killed. The heuristics (numpy),
    the learned controller's prior (torch) and the exported selector all decode with this function.
    """
    from adascale_rl.device.model import namespace

    xp = xp or namespace(obs)
    col = lambda name: obs[:, INDEX[name]:INDEX[name] + 1]  # noqa: E731
    clock = xp.where(col("clock_missing") > 0.5, 1.0, xp.clip(col("clock_frac"), 0.05, None))
    return {
        "freq_mhz": clock * f_max_mhz,
        "bg_runnable": col("bg_runnable_per_core") * cores,
        "deadline_ms": ref_ms * xp.exp(col("deadline_log") * (4.0 * _LN2)),
        "rate_hz": (1000.0 / ref_ms) * xp.exp(col("load_log") * (4.0 * _LN2)),
        "slowdown": xp.exp(col("slowdown_ema_log") * (2.0 * _LN2)),
        "loaded": obs[:, N_CONTEXT:N_CONTEXT + n_variants],
        "killed": col("last_oom") > 0.5,
    }


class Feedback(NamedTuple):
    """What the app measured about its own last interval."""

    latency_ms: float
    variant: int
    miss_rate: float
    energy_j: float
    switched: bool
    oom: bool
    slowdown_ema_log2: float = 0.0  # running average of log2(measured / model-predicted latency)


_NO_FEEDBACK = [0.0] * 7
# writes the N_CONTEXT context values into a new observation's float32 buffer at once (native order, as numpy's
# float32; each value rounded to the nearest float32 as numpy's assignment does): the step's fast path
_pack_context = struct.Struct(f"{N_CONTEXT}f").pack_into
_LN2 = math.log(2.0)


class ObservationEncoder:
    """Turns a context reading, the loaded variant and feedback into the policy's input."""

    def __init__(self, device: DevicePreset, catalog: Catalog, period_s: float):
        self.device = device
        self.catalog = catalog
        self.period_s = float(period_s)
        self.n_variants = len(catalog)
        full = catalog.variants[catalog.largest]
        self._ref_ms = full.latency_ms
        self._mem_scale = 2.0 * max(v.peak_mem_mb for v in catalog.variants)
        self._lat = [v.latency_ms for v in catalog.variants]
        self._lat_arr = np.array(self._lat, dtype=np.float64)
        self._energy_budget_j = device.energy_budget_j(self.period_s)
        self._cores = float(device.cores)
        self._temp_span = max(device.throttle_c - 25.0, 1.0)
        self._throttle = device.throttle_c
        self._f_max = device.f_max_mhz
        self._mem_total = device.mem_total_mb
        names = [f.name for f in FEATURES] + [f"loaded={v.id}" for v in catalog.variants]
        self.names: tuple[str, ...] = tuple(names)
        self.low = np.array([f.low for f in FEATURES] + [0.0] * self.n_variants, dtype=np.float32)
        self.high = np.array([f.high for f in FEATURES] + [1.0] * self.n_variants, dtype=np.float32)
        # row i: an observation with only the one-hot of variant i set (encode_values copies one)
        self._one_hot = np.zeros((self.n_variants, self.size), dtype=np.float32)
        self._one_hot[np.arange(self.n_variants), N_CONTEXT + np.arange(self.n_variants)] = 1.0

    @property
    def reference_latency_ms(self) -> float:
        """The full model's catalog latency: the scale of ``deadline_log`` and ``load_log``."""
        return self._ref_ms

    @property
    def size(self) -> int:
        return len(self.names)

    def encode(self, reading: Mapping[str, float | None], loaded: int, feedback: Feedback | None,
               out: np.ndarray | None = None) -> np.ndarray:
        """Encode one observation.

        ``reading`` keys: ``freq_mhz``, ``bg_cpu_util``, ``bg_runnable``, ``mem_avail_mb``,
        ``battery_pct``, ``plugged``, ``temp_c`` (measured SoC temperature), ``request_rate_hz``,
        ``deadline_ms``. ``None`` (or absence) means the sensor is missing; a missing
        ``bg_runnable`` is estimated as ``bg_cpu_util x cores``, as for traces without it.
        """
        get = reading.get
        return self.encode_values(get("freq_mhz"), get("bg_cpu_util"), get("bg_runnable"), get("mem_avail_mb"),
                                  get("battery_pct"), get("plugged"), get("temp_c"), get("request_rate_hz"),
                                  get("deadline_ms"), loaded, feedback, out)

    def encode_values(self, freq, bg, runnable, mem, batt, plugged, temp, rate, deadline, loaded: int,
                      feedback: Feedback | None, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`encode` with the reading's values as arguments (the environment's fast path).

        ``feedback`` is a :class:`Feedback` or a plain tuple of its fields in order.
        Returns ``out`` filled in, or a new array when ``out`` is None.
        """
        mem = self._mem_total if mem is None else mem
        deadline = deadline or 100.0
        rate = 10.0 if rate is None else rate
        # one value per FEATURES entry, in its order; clipped to its bounds inline ("lo if x < lo else hi if x > hi
        # else x"): this runs every step
        clock = 1.0 if freq is None else freq / self._f_max
        per_core = (bg or 0.0) if runnable is None else runnable / self._cores
        mem_frac = mem / self._mem_total
        mem_fit = mem / self._mem_scale
        headroom = 1.0 if temp is None else (self._throttle - temp) / self._temp_span
        deadline_log = math.log2(deadline / self._ref_ms) * 0.25
        load = rate * self._ref_ms * 0.001
        load_log = math.log2(1e-3 if 1e-3 > load else load) * 0.25  # max(load, 1e-3)
        vals = [
            0.0 if clock < 0.0 else 1.0 if clock > 1.0 else clock,
            1.0 if freq is None else 0.0,
            bg or 0.0,  # in [0, 1] by the context schema
            0.0 if per_core < 0.0 else 4.0 if per_core > 4.0 else per_core,
            0.0 if mem_frac < 0.0 else 1.0 if mem_frac > 1.0 else mem_frac,
            0.0 if mem_fit < 0.0 else 1.0 if mem_fit > 1.0 else mem_fit,
            1.0 if batt is None else batt * 0.01,  # in [0, 100] by the context schema
            1.0 if batt is None else 0.0,
            1.0 if plugged is None else float(bool(plugged)),
            -1.0 if headroom < -1.0 else 2.0 if headroom > 2.0 else headroom,
            1.0 if temp is None else 0.0,
            -2.0 if deadline_log < -2.0 else 2.0 if deadline_log > 2.0 else deadline_log,
            -3.0 if load_log < -3.0 else 2.0 if load_log > 2.0 else load_log,
        ]
        if feedback is None:
            vals += _NO_FEEDBACK
        else:
            latency_ms, variant, miss_rate, energy_j, switched, oom, slowdown_ema_log2 = feedback
            lat = 1e-6 if 1e-6 > latency_ms else latency_ms  # max(latency_ms, 1e-6)
            lat_log = math.log2(lat / deadline) * 0.25
            slowdown_log = math.log2(lat / self._lat[variant]) * 0.5
            ema_log = slowdown_ema_log2 * 0.5
            energy_frac = energy_j / self._energy_budget_j
            vals += (
                -3.0 if lat_log < -3.0 else 2.0 if lat_log > 2.0 else lat_log,
                -1.0 if slowdown_log < -1.0 else 2.0 if slowdown_log > 2.0 else slowdown_log,
                -1.0 if ema_log < -1.0 else 2.0 if ema_log > 2.0 else ema_log,
                miss_rate,
                0.0 if energy_frac < 0.0 else 1.0 if energy_frac > 1.0 else energy_frac,
                float(switched),
                float(oom),
            )
        if out is None:
            out = self._one_hot[loaded].copy()
            try:
                _pack_context(out, 0, *vals)
                return out
            except (OverflowError, struct.error):  # a value beyond float32's range: numpy makes it inf
                pass
        else:
            out[N_CONTEXT:] = 0.0
            out[N_CONTEXT + loaded] = 1.0
        out[:N_CONTEXT] = vals
        return out

    def encode_batch(self, freq, bg, runnable, mem, batt, plugged, temp, rate, deadline, loaded,
                     feedback=None) -> np.ndarray:
        """:meth:`encode_values` for a batch of ``B`` readings (the vector environment's path): every
        argument an array of length ``B``, or None for a sensor missing in the whole batch; ``loaded``
        integers; ``feedback`` None (no feedback in any row) or a tuple of arrays in
        :class:`Feedback`'s order. Returns a new ``(B, size)`` float32 array.

        The same formulas over arrays; ``tests/environment/test_observation.py`` ties it to
        :meth:`encode_values` row by row (numpy's log2 may differ from math's by an ulp before the
        rounding to float32).
        """
        loaded = np.asarray(loaded)
        b = loaded.shape[0]
        cols = np.empty((N_CONTEXT, b), dtype=np.float64)  # one row per FEATURES entry
        I = INDEX
        mem = np.full(b, self._mem_total) if mem is None else mem
        deadline = np.full(b, 100.0) if deadline is None else np.where(deadline == 0.0, 100.0, deadline)
        rate = np.full(b, 10.0) if rate is None else rate
        if freq is None:
            cols[I["clock_frac"]] = 1.0
            cols[I["clock_missing"]] = 1.0
        else:
            np.clip(freq / self._f_max, 0.0, 1.0, out=cols[I["clock_frac"]])
            cols[I["clock_missing"]] = 0.0
        cols[I["bg_cpu_util"]] = 0.0 if bg is None else bg  # in [0, 1] by the context schema
        per_core = (0.0 if bg is None else bg) if runnable is None else runnable / self._cores
        np.clip(per_core, 0.0, 4.0, out=cols[I["bg_runnable_per_core"]])
        np.clip(mem / self._mem_total, 0.0, 1.0, out=cols[I["mem_avail_frac"]])
        np.clip(mem / self._mem_scale, 0.0, 1.0, out=cols[I["mem_fit_largest"]])
        if batt is None:
            cols[I["battery_frac"]] = 1.0
            cols[I["battery_missing"]] = 1.0
        else:
            np.multiply(batt, 0.01, out=cols[I["battery_frac"]])
            cols[I["battery_missing"]] = 0.0
        cols[I["plugged"]] = 1.0 if plugged is None else plugged
        if temp is None:
            cols[I["temp_headroom"]] = 1.0
            cols[I["temp_missing"]] = 1.0
        else:
            np.clip((self._throttle - temp) / self._temp_span, -1.0, 2.0, out=cols[I["temp_headroom"]])
            cols[I["temp_missing"]] = 0.0
        np.clip(np.log2(deadline / self._ref_ms) * 0.25, -2.0, 2.0, out=cols[I["deadline_log"]])
        np.clip(np.log2(np.maximum(rate * self._ref_ms * 0.001, 1e-3)) * 0.25, -3.0, 2.0, out=cols[I["load_log"]])
        if feedback is None:
            cols[FEEDBACK_START:] = 0.0
        else:
            latency_ms, variant, miss_rate, energy_j, switched, oom, slowdown_ema_log2 = feedback
            lat = np.maximum(latency_ms, 1e-6)
            np.clip(np.log2(lat / deadline) * 0.25, -3.0, 2.0, out=cols[I["last_latency_log"]])
            np.clip(np.log2(lat / self._lat_arr[variant]) * 0.5, -1.0, 2.0, out=cols[I["last_slowdown_log"]])
            np.clip(slowdown_ema_log2 * 0.5, -1.0, 2.0, out=cols[I["slowdown_ema_log"]])
            cols[I["last_miss_rate"]] = miss_rate
            np.clip(energy_j / self._energy_budget_j, 0.0, 1.0, out=cols[I["last_energy_frac"]])
            cols[I["last_switched"]] = switched
            cols[I["last_oom"]] = oom
        out = np.zeros((b, self.size), dtype=np.float32)
        out[:, :N_CONTEXT] = cols.T
        out[np.arange(b), N_CONTEXT + loaded] = 1.0
        return out

    def decode(self, obs: np.ndarray) -> dict[str, float | int | None]:
        """Physical values back from an observation (what a heuristic reasons with).

        Exact inside the clipping bounds; a missing sensor decodes as ``None``.
        """
        d = self.device
        o = {f.name: float(x) for f, x in zip(FEATURES, obs[:N_CONTEXT])}
        deadline = self._ref_ms * 2.0 ** (4.0 * o["deadline_log"])
        has_fb = any(o[f.name] for f in FEATURES[FEEDBACK_START:])
        return {
            "freq_mhz": None if o["clock_missing"] else o["clock_frac"] * d.f_max_mhz,
            "bg_cpu_util": o["bg_cpu_util"],
            "bg_runnable": o["bg_runnable_per_core"] * self._cores,
            "mem_avail_mb": o["mem_avail_frac"] * d.mem_total_mb,
            "battery_pct": None if o["battery_missing"] else 100.0 * o["battery_frac"],
            "plugged": o["plugged"],
            "temp_c": None if o["temp_missing"] else d.throttle_c - o["temp_headroom"] * self._temp_span,
            "deadline_ms": deadline,
            "request_rate_hz": 1000.0 * 2.0 ** (4.0 * o["load_log"]) / self._ref_ms,
            "loaded": int(np.argmax(obs[N_CONTEXT:])),
            "last_latency_ms": deadline * 2.0 ** (4.0 * o["last_latency_log"]) if has_fb else None,
            "slowdown_ema_log2": 2.0 * o["slowdown_ema_log"],
            "last_miss_rate": o["last_miss_rate"],
            "last_energy_j": o["last_energy_frac"] * self._energy_budget_j,
            "killed": o["last_oom"] > 0.5,  # OOM-killed last interval: nothing is resident
        }

    def constants(self) -> dict[str, float]:
        """The numbers :func:`decode_planning` needs besides the observation (plain floats)."""
        return {"f_max_mhz": float(self._f_max), "ref_ms": float(self._ref_ms), "cores": self._cores,
                "n_variants": self.n_variants}

    def describe(self) -> str:
        rows = [f"{i:>3} {f.name:<18} {f.unit:<12} [{f.low:g}, {f.high:g}]  {f.doc}" for i, f in enumerate(FEATURES)]
        rows.append(f"{N_CONTEXT:>3}.. loaded=<variant>  one-hot of the loaded variant ({self.n_variants})")
        return "\n".join(rows)
