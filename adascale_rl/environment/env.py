"""AdaScaleEnv: choosing the variant of an elastic model as the resource context moves."""

from __future__ import annotations

import bisect
import copy
import itertools
import math
import numbers
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from adascale_rl.context.traces import Trace, TraceDataset, TraceError, load_dataset, load_trace
from adascale_rl.device.catalog import Catalog, load_catalog
from adascale_rl.device.model import WAKE_SCALE_RANGE
from adascale_rl.device.physics import DevicePhysics, Exo, Noise, PhysicsState
from adascale_rl.device.presets import SERVICE_SCALE_RANGE, DevicePreset, load_device, with_host_constants
from adascale_rl.environment.actions import KEEP
from adascale_rl.environment.observation import SLOWDOWN_EMA_WEIGHT, ObservationEncoder
from adascale_rl.environment.reward import Reward, ScaledReward, make_reward
from adascale_rl.environment.spec import EnvSpec, find_spec

SPLITS = ("train", "val", "test", "all")

#: step-level latency noise (log-normal sigma) and spikes. Derived from CALIBRATION.md:
#: Pi 4 ShuffleNetV2 60 ms best case with spikes to 128 ms (2.1x) under ordinary
#: background services; Snapdragon NPU max/median 1.8x in steady state.
LATENCY_SIGMA = 0.08
SPIKE_PROB = 0.03
SPIKE_RANGE = (1.5, 2.5)


@lru_cache(maxsize=16)
def _dataset(path: str, workload: str | None = None) -> TraceDataset:
    """A trace dataset folder, or a user's folder of trace CSVs (or one CSV), all as the test split.

    Loose CSVs carry no device: they are replayed as they are, memory unscaled, the clock
    cap as a share of the trace's own top cap. With ``workload`` (the spec's), traces
    without app columns (recordings) get that app's modes
    (:func:`adascale_rl.context.generators.with_app_modes`).
    """
    ds = _load_dataset(path)
    if workload is None:
        return ds
    from adascale_rl.context.generators import with_app_modes
    from adascale_rl.context.scenarios import load_workload

    return with_app_modes(ds, load_workload(workload))


def _load_dataset(path: str) -> TraceDataset:
    p = Path(path)
    if not p.exists():
        raise TraceError("no such file or folder (a trace dataset, a folder of trace CSV files or one CSV)", file=p)
    if p.is_dir() and (p / "schema.json").exists():
        return load_dataset(p)
    files = sorted(p.glob("*.csv")) if p.is_dir() else [p]
    if not files or not all(f.is_file() for f in files):
        raise TraceError("is neither a trace dataset (no schema.json) nor a folder of trace CSV files", file=p)
    traces = [load_trace(f) for f in files]
    for t in traces:
        if t.period_s is None:
            raise TraceError("a single-row trace has no period; record at least two rows", file=t.path)
    meta = {"name": p.stem, "version": 1, "period_s": traces[0].period_s, "device": "unknown",
            "device_mem_total_mb": None, "source": "user"}
    return TraceDataset(p, meta, {"train": [], "test": traces})


def val_rule(ds: TraceDataset) -> str:
    """How :func:`split_traces` holds ``val`` out of ``train`` for this dataset, in words."""
    return "every 4th train trace" if len(ds.train) >= 4 else "the last fifth of each train trace"


def split_traces(ds: TraceDataset, split: str) -> list[Trace]:
    """Traces of a split.

    ``val`` is held out of ``train``: every 4th train trace when there are at least
    four, otherwise the last fifth (in time) of every train trace (:func:`val_rule`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    train = ds.train
    if split == "test":
        return list(ds.test)
    if split == "all":
        return list(train) + list(ds.test)
    if len(train) >= 4:
        if split == "val":
            return [t for i, t in enumerate(train) if i % 4 == 3]
        return [t for i, t in enumerate(train) if i % 4 != 3]
    cut = [len(t) - max(len(t) // 5, 1) for t in train]
    if split == "val":
        return [t.window(c, len(t) - c) for t, c in zip(train, cut) if len(t) >= 2]
    return [t.window(0, c) if len(t) >= 2 else t for t, c in zip(train, cut)]


def exo_rows(trace: Trace, device: DevicePreset, period_s: float) -> list[Exo]:
    """The trace in this device's terms, one :class:`Exo` per interval.

    A trace recorded on another device is replayed by fraction: available memory
    as a share of that device's total, and the clock cap as a share of the
    trace's highest cap (its top clock). The background run queue is replayed as it is
    (the same processes run); a trace without it gets ``bg_cpu_util x cores`` of this
    device, which saturates at the core count (the recorded load cannot tell more).
    """
    tr = trace.resample(period_s) if trace.period_s and not math.isclose(trace.period_s, period_s) else trace
    cap = tr.column("freq_cap_mhz")
    mem = tr.column("mem_avail_mb")
    same = trace.device == device.name
    if not same:
        finite = cap[np.isfinite(cap)]
        if finite.size:
            cap = cap * (device.f_max_mhz / finite.max())
        if trace.mem_total_mb:
            mem = mem * (device.mem_total_mb / trace.mem_total_mb)
    mem = np.minimum(mem, device.mem_total_mb)
    battery = tr.column("battery_pct") if device.has_battery else np.full(len(tr), 100.0)
    plugged = tr.column("plugged") if device.has_battery else np.ones(len(tr))
    bg = tr.column("bg_cpu_util")
    runnable = tr.data.get("bg_runnable")
    runnable = bg * device.cores if runnable is None else np.where(np.isfinite(runnable), runnable, bg * device.cores)
    cols = [cap, bg, runnable, mem, tr.column("ambient_temp_c"), battery, plugged,
            tr.column("request_rate_hz"), tr.column("deadline_ms")]
    return [Exo(float(c), float(b), float(q), float(m), float(a), float(bt), bool(p >= 0.5), float(r), float(dl))
            for c, b, q, m, a, bt, p, r, dl in zip(*cols)]


def replay_note(ds, device) -> str | None:
    """How traces recorded on another device (or on none named) are replayed on ``device``; None
    when they were recorded on it (:func:`adascale_rl.environment.env.exo_rows`)."""
    if ds.device == "unknown":
        return (f"the trace files carry no device; they are replayed on {device.name} as they are "
                f"(available memory unscaled, the clock cap as a share of each trace's highest cap)")
    if ds.device != device.name:
        return (f"the traces were recorded on {ds.device} and are replayed on {device.name}: available memory "
                f"scaled by total memory ({ds.mem_total_mb:g} -> {device.mem_total_mb:g} MB), the clock cap as a "
                f"share of each trace's highest cap")
    return None


@dataclass(frozen=True)
class Episode:
    """What an episode replays, fixed at reset: the window of the trace in this device's terms,
    its latency noise (drawn from the seed, independent of the actions) and the start state.
    References that read the simulator (the oracle) plan over it; a deployable controller never sees it."""

    trace: int                      # index of the trace in the split
    start: int                      # first interval of the window
    trace_name: str
    exo: tuple[Exo, ...]
    noise: tuple[Noise, ...]
    state0: PhysicsState

    def __len__(self) -> int:
        return len(self.exo)


def noise_quadrature(latency_sigma: float = LATENCY_SIGMA, spike_prob: float = SPIKE_PROB,
                     host_speed: Sequence[float] | None = None, nodes: int = 12,
                     spike_nodes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(factors, weights): a quadrature of one interval's latency factor as :meth:`AdaScaleEnv.noise_factors` draws
    it (a spell of spikes keeps the share ``spike_prob``, so the marginal is the same with ``spike_spell_s``): the
    log-normal by Gauss-Hermite on ``nodes`` points, a spike's factor (uniform in :data:`SPIKE_RANGE`) on
    ``spike_nodes`` midpoints and, with ``host_speed``, the episode's log-uniform speed on ``spike_nodes``
    Gauss-Legendre points. The weights sum to 1. What the simulator's latency in one context spreads to over many
    intervals: ``benchmarks/contention.py`` predicts a measurement of several rounds with it."""
    if not latency_sigma >= 0 or not 0.0 <= spike_prob <= 1.0 or nodes < 1 or spike_nodes < 1:
        raise ValueError(f"noise_quadrature needs latency_sigma >= 0, spike_prob in [0, 1], nodes >= 1 and "
                         f"spike_nodes >= 1, not {latency_sigma!r}, {spike_prob!r}, {nodes!r}, {spike_nodes!r}")
    if host_speed is not None and not (len(host_speed) == 2 and all(0.0 < float(x) < math.inf for x in host_speed)):
        raise ValueError(f"host_speed must be two positive finite factors (lo, hi), not {host_speed!r}")
    x, w = np.polynomial.hermite_e.hermegauss(nodes)  # probabilists' Hermite: weight exp(-x^2 / 2)
    factors, weights = np.exp(latency_sigma * x), w / w.sum()
    if spike_prob > 0.0:
        lo, hi = SPIKE_RANGE
        u = lo + (hi - lo) * (np.arange(spike_nodes) + 0.5) / spike_nodes
        factors = np.concatenate([factors, np.outer(factors, u).ravel()])
        weights = np.concatenate([weights * (1.0 - spike_prob), np.repeat(weights, spike_nodes) * spike_prob
                                  / spike_nodes])
    if host_speed is not None:
        lo, hi = (math.log(float(s)) for s in host_speed)
        g, gw = np.polynomial.legendre.leggauss(spike_nodes)
        speed = np.exp(lo + (hi - lo) * (g + 1.0) / 2.0)
        factors, weights = np.outer(factors, speed).ravel(), np.outer(weights, gw / gw.sum()).ravel()
    return factors, weights


def _noises(factors: np.ndarray):
    """One :class:`Noise` per latency factor (an iterator; the tuples are built in C, on every reset's path)."""
    return map(tuple.__new__, itertools.repeat(Noise), zip(factors.tolist()))


class AppDeviceError(ValueError):
    """An ``app_device`` that does not describe the world's device (another name or core count)."""


def _per_variant(name: str, value: Any, catalog: Catalog, bounds: tuple[float, float]) -> dict[str, float] | None:
    """A per-variant argument (``variant_service_scale``, ``variant_wake_scale``) checked: None, or a mapping of the
    catalog's variant ids to factors within ``bounds``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of variant id to factor, not {value!r}")
    lo, hi = bounds
    out = {}
    for vid, x in value.items():
        if vid not in catalog.ids:
            raise ValueError(f"{name} names {vid!r}, which is not a variant of the catalog {catalog.name}")
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real) or not lo <= float(x) <= hi:
            raise ValueError(f"{name}[{vid!r}] = {x!r} must be a number in [{lo:g}, {hi:g}]")
        out[vid] = float(x)
    return out


def _host_speed(value: Any) -> tuple[float, float] | None:
    """``host_speed`` checked: None, or (lo, hi) with 0 < lo <= hi (a list from YAML or a CLI is fine)."""
    if value is None:
        return None
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"host_speed must be a pair (low, high) of speeds, not {value!r}") from None
    if not (0.0 < lo <= hi < math.inf):
        raise ValueError(f"host_speed must be (low, high) with 0 < low <= high, not {value!r}")
    return lo, hi


def _number(name: str, value: Any) -> float:
    """A finite float from an environment argument, or a ValueError naming it."""
    try:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError
        return float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{name} must be a finite number, not {value!r}") from None


def window_steps(max_episode_steps: Any, default: int) -> int:
    """The episode window in intervals: ``max_episode_steps`` (a whole number >= 1), else ``default``."""
    if max_episode_steps is None:
        return int(default)
    w = max_episode_steps
    try:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real) or not float(w).is_integer() or w < 1:
            raise ValueError
        return int(w)
    except (ValueError, OverflowError):
        raise ValueError(f"max_episode_steps must be a whole number >= 1, not {max_episode_steps!r}") from None


class AdaScaleEnv(gym.Env):
    """
    ## Description

    An app runs an elastic model (one network, many variants: branches crossed with
    compression operators, listed in a catalog) on a device whose resource context
    moves: other apps take CPU and memory, power modes and heat cap the clock, the
    battery drains, the app's request rate and deadline change with its mode. Every
    interval (``period_s``, default 1 s) the controller keeps the loaded variant or
    switches to another. The simulator (``adascale_rl.device.physics`` around the one
    performance model ``adascale_rl.device.model``) replays a recorded or simulated
    context trace and adds the controller's own effect: latency from clock, CPU
    time-sharing with the background's runnable threads (a measured response-time
    distribution, not only a mean factor) and noise; deadline misses and dropped frames;
    energy; heating and thermal throttling with hysteresis; battery drain and the
    battery saver; switching cost and OOM kills. The dynamics of heat and battery
    couple the choices over time: running the biggest variant flat out now costs
    clock later.

    ## Action Space

    ``Discrete(1 + n_variants)``: action 0 keeps the loaded variant; action ``i``
    switches to catalog variant ``i - 1`` (names in :attr:`action_names`).
    :meth:`action_masks` (also ``info["action_mask"]``) masks switches whose peak
    memory (old and new variant resident together) does not fit the memory last
    measured (after an OOM kill nothing is resident: a variant needs only its own
    peak); keep is never masked, and neither is action ``loaded + 1`` (asking
    for the variant already loaded is a keep), so a policy may name the variant it
    wants every interval instead of deciding when to switch.
    A masked action taken anyway is carried out, with its consequences.

    ## Observation Space

    ``Box(float32)``, features declared once in
    :mod:`adascale_rl.environment.observation` (``env.unwrapped.encoder.describe()``):
    the context as last measured (clock, background CPU and run queue, available
    memory, battery, plugged, SoC temperature, each with a missing-sensor flag where a
    device may lack it), the app's current deadline and request rate, last
    interval's feedback (latency, slow-down against the catalog and against the
    performance model's prediction for the measured context, miss rate, energy, switch,
    OOM) and the loaded variant one-hot. Never the simulator's hidden state (the noise
    draw, the thermal model); every field is what a device computes from its own
    measurements and the catalog.

    ## Rewards

    ``r = w_accuracy*accuracy*on_time - w_miss*miss_rate - w_energy*energy_share
    - w_mem*mem_share - w_switch*switched - w_oom*oom`` (see
    :mod:`adascale_rl.environment.reward`); presets ``balanced``,
    ``latency-critical``, ``energy-saver``, ``accuracy-first``. Every term is in
    ``info`` as ``reward_<term>``, next to the measured quantities
    (``accuracy``, ``effective_accuracy``, ``latency_ms`` (mean response time of the
    served requests), ``service_ms`` (one request's isolated service time),
    ``deadline_ms``, ``energy_mj``, ``power_w``, ``mem_mb``, ``miss_rate``,
    ``served_frac``, ``switched``, ``oom``, ``temp_c``, ``freq_mhz``,
    ``battery_pct``, ``bg_runnable``, ``variant``).

    ## Starting State

    ``reset(seed=..., options=...)`` picks a trace of the split and a window start
    with ``self.np_random`` (weighted by trace length), or takes
    ``options={"trace": i, "start": s, "variant": id_or_index}``. The device starts
    where its thermal governor settles under the background load: unthrottled at the
    steady temperature if that stays at or below the throttle point, else at the highest
    operating point that holds it (or on the governor's cycle between two points). The
    initial variant is
    random in training (``split="train"``) and otherwise the most accurate one
    that fits the memory at the start. The episode's latency noise is drawn at
    reset from the seed, independently of the actions, so policies reset with the
    same seed and options meet the same future.

    ## Episode End

    Never terminated (an OOM kill restarts the app); truncated when the window
    (``max_episode_steps`` intervals, or the rest of a shorter trace) ends.

    ## Arguments

    ``gymnasium.make("AdaScale/Rpi4-Vision-v4", split="train", reward="balanced",
    period_s=None, dataset=None, latency_sigma=0.08, spike_prob=0.03,
    spike_spell_s=None, random_start_variant=None, app_device=None, host_speed=None,
    world_constants=None, variant_service_scale=None, variant_wake_scale=None, render_mode=None)``; ``spec``
    (the YAML name or an :class:`EnvSpec`) is set by the registration. ``dataset``
    points the same environment at another trace dataset (for example your own
    recordings). ``spike_spell_s`` makes latency spikes last: a spike then persists
    for a geometric number of intervals with that mean length in seconds, while the
    fraction of intervals in a spike stays ``spike_prob``; ``None`` (the default)
    draws every interval's spike independently. ``host_speed=(lo, hi)`` draws a host speed
    per episode, log-uniform in that range, by which the world serves every request slower
    (or faster) for the whole episode, as a preset's ``service_scale`` does, while the app's
    model keeps the catalog's speed: a controller trained with it has met persistent
    slow-downs it cannot explain (``None``, the default: no such draw). ``app_device`` (a preset, its name or
    path) is the device model the app holds, where it differs from the world's: the
    observation's predicted latency, and so the slow-down the app measures, come from it
    (``sim2real`` replays a controller with the model its selector.json holds); by default
    the world's preset at the catalog's speed (its ``service_scale`` acts on the world only).
    ``world_constants`` (a mapping, e.g. ``{"idle_wake_ms": 1.7}``) replaces some of the preset's
    host constants (``adascale_rl.device.presets.HOST_CONSTANTS``: the scheduler's and
    ``service_scale``) in the world only, while the app's model keeps the preset's: a host
    measured at another time (``sim2real`` replays a live run with the wake-up cost its probe
    measured right before it). ``variant_service_scale`` (a mapping of variant id to factor) gives
    the world's service time over the catalog's latency for the variants it names, in place of
    the preset's ``service_scale``: a host that speeds its variants up unevenly (``sim2real``
    replays a live run with each variant's speed as its probe measured it). ``variant_wake_scale``
    (likewise) multiplies the world's wake-up cost of the variants it names over the scheduler's line
    ``idle_wake_ms + idle_wake_per_ms x service``: a host whose variants wake up unevenly (``sim2real``
    replays a live run with each variant's wake-up cost as its probe measured it).

    ## Version History

    * v4: a saturated app serves the latest request, which has waited half the time between two
      requests (it waited half a service, however long); the demand that makes an app saturated
      counts the requests it serves, not those superseded while it waited for a core at wake-up,
      and such a wait holds the app up to the next request's arrival (counting all of it, the
      sleeper regime these apps now fall in lost twice the requests measured beside 4 busy processes).
      Measured at 400 Hz on the Intel VM (benchmarks/contention.py; the live quick runs' replays):
      v3 over-predicted the requests served by up to 118 %, and greedy's replay latency error p90
      was 76-132 % in four of the five quick live runs (v4: 10-25 % in all five; docs/LIVE.md).
    * v3: a sleeping app preempted after its wake slice waits the other threads' slices,
      ``tick x max(1, m)`` with ``m`` other runnable threads per core (it waited one tick
      whatever the load); measured beside 6 busy processes on 2 cores, where the live loop's
      full model answered in 1.6-1.9x the mean response time v2 predicted (docs/LIVE.md).
    * v2: a wait for a core at wake-up is an exponential wait of mean 0.9 tick at every request
      rate (it was capped at 0.56 of the time between requests), a request that waits past
      its deadline is dropped as stale, and ``latency_ms`` is the mean of the requests served
      (measured at 400 Hz on the reference machine; the live loop's misses under load).
    * v1: one performance model (``adascale_rl.device.model``) for the simulator, the
      planners, the prior and the oracle; contention as CPU time-sharing among runnable
      threads, measured on a real machine (serial work slows too; the background run queue
      ``bg_runnable`` is read where recorded), with a response-time distribution (wake-up
      waits and preemptions) rather than a mean factor; the observation's slow-down is
      measured latency over the model's prediction (no hidden draw); the first observation
      comes from the simulator's clock (snapped to the ladder, battery saver applied);
      energy is dynamic energy above idle for every catalog.
    * v0: initial release (before it, the Pixel 4 preset's thermal resistance was corrected and
      a window under heavy background load came to start where the governor settles).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, spec: str | EnvSpec = "Rpi4-Vision", *, split: str = "train", reward: Any = None,
                 period_s: float | None = None, dataset: str | Path | None = None,
                 max_episode_steps: int | None = None, latency_sigma: float = LATENCY_SIGMA,
                 spike_prob: float = SPIKE_PROB, spike_spell_s: float | None = None,
                 random_start_variant: bool | None = None, app_device: DevicePreset | str | None = None,
                 host_speed: Sequence[float] | None = None, world_constants: Mapping[str, float] | None = None,
                 variant_service_scale: Mapping[str, float] | None = None,
                 variant_wake_scale: Mapping[str, float] | None = None, render_mode: str | None = None):
        self.env_spec = spec if isinstance(spec, EnvSpec) else find_spec(spec)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, not {render_mode!r}")
        self.render_mode = render_mode
        preset: DevicePreset = load_device(self.env_spec.device)
        #: the world's preset: the spec's, with ``world_constants`` where given
        self.device: DevicePreset = preset if not world_constants else with_host_constants(
            preset, dict(world_constants), "the environment's world_constants argument")
        self.catalog: Catalog = load_catalog(self.env_spec.catalog_path())
        self.reward_fn: Reward = make_reward(self.env_spec.reward if reward is None else reward)
        self.period_s = _number("period_s", self.env_spec.period_s if period_s is None else period_s)
        if not self.period_s > 0:
            raise ValueError(f"period_s must be a number of seconds > 0, not {period_s!r}")
        #: the reward with this device's normalisers: the one place they are applied
        self.reward: ScaledReward = self.reward_fn.scaled(self.device.energy_budget_j(self.period_s),
                                                          self.device.mem_total_mb)
        self.window = window_steps(max_episode_steps, self.env_spec.max_episode_steps)
        self.split = split
        self.latency_sigma = _number("latency_sigma", latency_sigma)
        self.spike_prob = _number("spike_prob", spike_prob)
        if not self.latency_sigma >= 0:
            raise ValueError(f"latency_sigma must be a number >= 0, not {latency_sigma!r}")
        if not 0.0 <= self.spike_prob <= 1.0:
            raise ValueError(f"spike_prob must be a number in [0, 1], not {spike_prob!r}")
        self.spike_spell_s = None if spike_spell_s is None else _number("spike_spell_s", spike_spell_s)
        if self.spike_spell_s is not None:
            if self.spike_prob == 1.0:
                raise ValueError("spike_spell_s needs spike_prob < 1 (with every interval in a spike, "
                                 "spells never end)")
            # the start probability that keeps the spike fraction at spike_prob,
            # spike_prob / (1 - spike_prob) x period_s / spike_spell_s, must not exceed 1
            shortest = max(self.period_s, self.period_s * self.spike_prob / (1.0 - self.spike_prob))
            if not self.spike_spell_s >= shortest * (1.0 - 1e-9):
                raise ValueError(f"spike_spell_s must be at least {shortest:g} s (one interval, and long enough "
                                 f"for spike_prob {self.spike_prob:g}), not {spike_spell_s!r}")
        self.host_speed = _host_speed(host_speed)
        if random_start_variant is not None and not isinstance(random_start_variant, (bool, np.bool_)):
            raise ValueError(f"random_start_variant must be true, false or None, not {random_start_variant!r}")
        self.random_start_variant = (split == "train") if random_start_variant is None else bool(random_start_variant)
        ds_path = Path(dataset) if dataset is not None else self.env_spec.dataset_path()
        self.dataset = _dataset(str(ds_path.resolve()), self.env_spec.workload)
        self.traces = split_traces(self.dataset, split)
        if not self.traces:
            raise ValueError(f"dataset {self.dataset.name} has no traces in split {split!r}")
        self.exo: list[list[Exo]] = [exo_rows(t, self.device, self.period_s) for t in self.traces]
        self.physics = DevicePhysics(
            self.device, self.catalog,
            variant_scale=_per_variant("variant_service_scale", variant_service_scale, self.catalog,
                                       SERVICE_SCALE_RANGE),
            variant_wake=_per_variant("variant_wake_scale", variant_wake_scale, self.catalog, WAKE_SCALE_RANGE))
        #: the preset of the app's own performance model (its predicted latency, so the slow-down it observes;
        #: what a planner on it assumes): the world's preset by default, whose ``service_scale`` the app's model
        #: ignores (it keeps the catalog's speed), or ``app_device`` where the app holds other constants than
        #: the world (a controller exported before its machine was recalibrated)
        self.app_device: DevicePreset = preset if app_device is None else (  # the spec's, whatever world_constants
            app_device if isinstance(app_device, DevicePreset) else load_device(app_device))
        if (self.app_device.name, self.app_device.cores) != (self.device.name, self.device.cores):
            raise AppDeviceError(f"app_device must describe the world's device ({self.device.name}, {self.device.cores} "
                             f"cores), not {self.app_device.name} with {self.app_device.cores}")
        self.app_physics = (self.physics if self.app_device is self.device
                            else DevicePhysics(self.app_device, self.catalog))
        self.encoder = ObservationEncoder(self.device, self.catalog, self.period_s)
        n = len(self.catalog)
        self.action_space = spaces.Discrete(n + 1)
        self.observation_space = spaces.Box(self.encoder.low, self.encoder.high, dtype=np.float32)
        self.action_names = ["keep"] + [f"switch:{v.id}" for v in self.catalog.variants]
        self._peak = [v.peak_mem_mb for v in self.catalog.variants]
        # peaks ascending, with the catalog index of each: the variants that fit are a prefix
        self._fit_order = sorted(range(n), key=self._peak.__getitem__)
        self._peak_sorted = [self._peak[i] for i in self._fit_order]
        self._masks: dict[tuple[int, int], np.ndarray] = {}
        self._acc = [v.accuracy for v in self.catalog.variants]
        lengths = np.array([len(e) for e in self.exo], dtype=np.float64)
        self._trace_p = lengths / lengths.sum()
        self._mask = np.ones(n + 1, dtype=np.int8)
        self._has_battery = self.device.has_battery
        self._has_temp = self.device.temp_sensor  # a device without a sensor observes its temperature as missing
        self._state: PhysicsState | None = None
        self._episode: Episode | None = None
        self._rows: tuple[Exo, ...] = ()
        self._noises: tuple[Noise, ...] = ()
        self._n_actions = n + 1
        self._ids = self.catalog.ids
        self._t = 0
        self._last: dict[str, Any] | None = None
        self._slow_ema = 0.0

    # ------------------------------------------------------------------ what references read
    @property
    def episode(self) -> Episode | None:
        """The episode being played (None before the first reset)."""
        return self._episode

    @property
    def t(self) -> int:
        """Intervals played in the episode so far (the index of the coming one)."""
        return self._t

    @property
    def sim_state(self) -> PhysicsState | None:
        """The simulator's endogenous state now (loaded variant, temperature, governor level, battery drawn)."""
        return self._state

    def fork(self) -> "AdaScaleEnv":
        """An independent copy of the environment at this point of the episode (as CompilerGym's
        ``fork``): stepping it leaves this one untouched, and both meet the same future trace and
        noise. The data (traces, catalog, physics) is shared, not copied."""
        twin = copy.copy(self)
        twin._np_random = copy.deepcopy(self._np_random)
        twin._last = None if self._last is None else dict(self._last)
        return twin

    # ------------------------------------------------------------------ episodes
    def episode_starts(self, trace: int) -> list[int]:
        """Window starts that cover a trace without overlap (evaluation walks these)."""
        length = len(self.exo[trace])
        if length <= self.window:
            return [0]
        return list(range(0, length - self.window + 1, self.window))

    def evaluation_episodes(self) -> list[tuple[int, int]]:
        """Every (trace, start) window of the split, in order."""
        return [(i, s) for i in range(len(self.exo)) for s in self.episode_starts(i)]

    def _resolve_variant(self, v: Any) -> int:
        if isinstance(v, (int, np.integer)):
            if not 0 <= int(v) < len(self.catalog):
                raise ValueError(f"variant index {v} out of range 0..{len(self.catalog) - 1}")
            return int(v)
        return self.catalog.index(str(v))

    def draw_noise(self, rng: np.random.Generator, steps: int) -> list[Noise]:
        """``steps`` intervals of latency noise: log-normal (``latency_sigma``), times a spike
        factor (uniform in ``SPIKE_RANGE``) in a fraction ``spike_prob`` of the intervals.

        Without ``spike_spell_s`` each interval's spike is drawn independently. With it,
        spikes follow a two-state Markov chain: a spike ends after each interval with
        probability ``period_s / spike_spell_s`` (so spells last ``spike_spell_s`` on
        average) and starts with the probability that keeps the stationary spike fraction
        at ``spike_prob``; a spell keeps the factor it started with."""
        return list(_noises(self.noise_factors(rng, steps)))

    def noise_factors(self, rng: np.random.Generator, steps: int) -> np.ndarray:
        """:meth:`draw_noise` as an array of the intervals' latency factors (the same draws, the same numbers)."""
        noise = np.exp(self.latency_sigma * rng.standard_normal(steps))
        if self.spike_spell_s is None:
            spikes = rng.random(steps) < self.spike_prob
            return noise * np.where(spikes, rng.uniform(*SPIKE_RANGE, size=steps), 1.0)
        if steps <= 0:
            return np.zeros(0)
        p_end = self.period_s / self.spike_spell_s
        p_start = self.spike_prob * p_end / (1.0 - self.spike_prob)
        u = rng.random(steps).tolist()
        factors = rng.uniform(*SPIKE_RANGE, size=steps).tolist()
        out = noise.tolist()
        # the first interval is in a spike with the stationary probability
        on, factor = u[0] < self.spike_prob, factors[0]
        if on:
            out[0] *= factor
        for t in range(1, steps):
            if on:
                on = u[t] >= p_end
            elif u[t] < p_start:
                on, factor = True, factors[t]
            if on:
                out[t] *= factor
        return np.array(out, dtype=np.float64)

    def draw_episode(self, rng: np.random.Generator, options: dict | None = None) -> tuple[int, int, np.ndarray, int]:
        """The draws of a reset, from ``rng`` in this order: the trace (weighted by length), the window
        start, the window's latency noise (:meth:`noise_factors`) and the initial variant, each unless
        ``options`` fixes it, and with ``host_speed`` the episode's host speed (log-uniform; it multiplies
        every interval's noise). Returns (trace index, start, noise factors, initial variant).

        :meth:`reset` and the vector environment (:mod:`adascale_rl.environment.vector`, one generator per
        sub-environment) both reset with it, so a sub-environment replays the single environment's episodes.
        """
        options = dict(options or {})
        unknown = set(options) - {"trace", "start", "variant"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {', '.join(sorted(unknown))}; known: trace, start, variant")
        if "trace" in options:
            ti = int(options["trace"])
            if not 0 <= ti < len(self.exo):
                raise ValueError(f"trace index {ti} out of range: split {self.split!r} has {len(self.exo)} traces")
        else:
            ti = int(rng.choice(len(self.exo), p=self._trace_p))
        rows = self.exo[ti]
        if "start" in options:
            start = int(options["start"])
            if not 0 <= start < len(rows):
                raise ValueError(f"start {start} out of range: trace {ti} has {len(rows)} intervals")
        else:
            start = int(rng.integers(0, max(len(rows) - self.window, 0) + 1))
        noise = self.noise_factors(rng, min(self.window, len(rows) - start))
        if "variant" in options:
            v0 = self._resolve_variant(options["variant"])
        elif self.random_start_variant:
            v0 = int(rng.integers(0, len(self.catalog)))
        else:
            v0 = self.default_variant(rows[start].mem_avail_mb)
        if self.host_speed is not None:  # drawn last: without it the draws above are the same
            lo, hi = self.host_speed
            noise = noise * math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return ti, start, noise, v0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        ti, start, factors, v0 = self.draw_episode(self.np_random, options)
        window = tuple(self.exo[ti][start:start + self.window])
        noise = tuple(_noises(factors))
        self._state = self.physics.initial_state(window[0], v0)
        self._episode = Episode(ti, start, self.traces[ti].name, window, noise, self._state)
        self._rows = window
        self._noises = noise
        self._t = 0
        self._slow_ema = 0.0
        first = window[0]
        obs = self.start_observation(self._state, first)
        self._update_mask(v0, first.mem_avail_mb)
        info = {"trace": self.traces[ti].name, "start": start, "variant": self.catalog.variants[v0].id,
                "action_mask": self._mask.copy()}
        self._last = None
        return obs, info

    def start_observation(self, state: PhysicsState, first: Exo) -> np.ndarray:
        """An episode's first reading (no feedback yet): the context at the start, the clock and temperature
        as the simulator has them in ``state`` (the single and the vector environment both start with it)."""
        physics = self.physics
        return self.encoder.encode_values(physics.clock(state, first), first.bg_cpu_util, first.bg_runnable,
                                          first.mem_avail_mb,
                                          physics.battery_pct(state, first) if self._has_battery else None,
                                          first.plugged, state.temp_c if self._has_temp else None,
                                          first.request_rate_hz, first.deadline_ms,
                                          state.loaded, None)

    def default_variant(self, mem_avail_mb: float) -> int:
        """The most accurate variant that fits ``mem_avail_mb`` on its own (else the smallest)."""
        fits = [i for i, p in enumerate(self._peak) if p <= mem_avail_mb]
        if not fits:
            return min(range(len(self._peak)), key=self._peak.__getitem__)
        return max(fits, key=lambda i: (self._acc[i], -self._peak[i]))

    def _update_mask(self, loaded: int, mem_avail_mb: float) -> None:
        """Set :attr:`_mask` for the variant now loaded and the memory last measured.

        A switch to variant i is valid when ``peak[i] + resident <= mem_avail_mb``.
        Float addition is monotone, so the variants that pass are the first ``k`` in
        ascending peak order; the masks are cached per ``(k, loaded)`` and read-only
        (``info`` and :meth:`action_masks` hand out copies).
        """
        killed = self._state is not None and self._state.killed
        resident = 0.0 if killed else self._peak[loaded] - self.catalog.runtime_overhead_mb
        peaks = self._peak_sorted
        n = len(peaks)
        k = bisect.bisect_right(peaks, mem_avail_mb - resident)  # a guess; the exact test settles it
        while k < n and peaks[k] + resident <= mem_avail_mb:
            k += 1
        while k > 0 and not peaks[k - 1] + resident <= mem_avail_mb:
            k -= 1
        m = self._masks.get((k, loaded))
        if m is None:
            m = np.zeros(n + 1, dtype=np.int8)
            m[[1 + i for i in self._fit_order[:k]]] = 1
            m[loaded + 1] = 1  # "switch" to the loaded variant is a keep: never masked, like action 0
            m[KEEP] = 1
            m.flags.writeable = False
            self._masks[(k, loaded)] = m
        self._mask = m

    def action_masks(self) -> np.ndarray:
        """Valid actions as booleans (sb3-contrib's MaskablePPO calls this)."""
        return self._mask.astype(bool)

    # ------------------------------------------------------------------ step
    def step(self, action):
        state = self._state
        if state is None:
            raise RuntimeError("call reset() before step()")
        rows = self._rows
        t = self._t
        if t >= len(rows):
            raise RuntimeError("the episode has ended; call reset()")
        a = int(action)
        if not 0 <= a < self._n_actions:
            raise ValueError(f"action {action!r} is outside Discrete({self._n_actions})")
        target = state.loaded if a == KEEP else a - 1
        exo = rows[t]
        _, bg_util, bg_runnable, mem_avail_mb, _, _, plugged, rate_hz, deadline_ms = exo
        self._state, out = self.physics.step(state, target, exo, self._noises[t], self.period_s)
        (_, freq_mhz, latency_ms, serving, accuracy, energy_j, power_w, mem_mb, switched, oom, temp_c, battery_pct,
         service_ms) = out
        served_frac, on_time, _, _ = serving
        miss = 1.0 - on_time
        r_accuracy, r_miss, r_energy, r_mem, r_switch, r_oom = self.reward.terms(accuracy, on_time, energy_j, mem_mb,
                                                                                  switched, oom)
        reward = r_accuracy + r_miss + r_energy + r_mem + r_switch + r_oom
        t += 1
        self._t = t
        truncated = t >= len(rows)
        nxt = exo if truncated else rows[t]
        if not oom and served_frac > 0.0:
            # the app's running estimate of the slow-down its performance model does not explain:
            # log2(measured mean latency / the model's prediction for the context it measured)
            predicted = self.app_physics.expected_latency_ms(target, freq_mhz, bg_runnable, rate_hz, deadline_ms)
            self._slow_ema += SLOWDOWN_EMA_WEIGHT * (math.log2(latency_ms / predicted) - self._slow_ema)
        fb = (latency_ms, target, miss, energy_j, switched, oom, self._slow_ema)  # a Feedback's fields, in order
        obs = self.encoder.encode_values(freq_mhz, bg_util, bg_runnable, mem_avail_mb,
                                         battery_pct if self._has_battery else None, plugged,
                                         temp_c if self._has_temp else None,
                                         nxt.request_rate_hz, nxt.deadline_ms, target, fb)
        self._update_mask(target, mem_avail_mb)
        info = {
            "variant": self._ids[target], "accuracy": accuracy,
            "effective_accuracy": accuracy * on_time, "latency_ms": latency_ms, "service_ms": service_ms,
            "deadline_ms": deadline_ms, "bg_runnable": bg_runnable, "energy_mj": energy_j * 1000.0, "power_w": power_w,
            "mem_mb": mem_mb, "miss_rate": miss, "served_frac": served_frac,
            "switched": switched, "oom": oom, "temp_c": temp_c, "freq_mhz": freq_mhz,
            "battery_pct": battery_pct,
            "reward_accuracy": r_accuracy, "reward_miss": r_miss, "reward_energy": r_energy,
            "reward_mem": r_mem, "reward_switch": r_switch, "reward_oom": r_oom,
            "action_mask": self._mask.copy(),
        }
        self._last = info
        return obs, float(reward), False, truncated, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return f"t=0 variant={self.catalog.variants[self._state.loaded].id} temp={self._state.temp_c:.1f}C"
        i = self._last
        return (f"t={self._t} {i['variant']:<22} f={i['freq_mhz']:.0f}MHz T={i['temp_c']:.1f}C "
                f"lat={i['latency_ms']:.1f}/{i['deadline_ms']:.0f}ms miss={i['miss_rate']:.2f} "
                f"E={i['energy_mj']:.0f}mJ mem={i['mem_mb']:.0f}MB{' SWITCH' if i['switched'] else ''}"
                f"{' OOM' if i['oom'] else ''}")
