"""The one performance model: what each variant does in a context, over arrays.

Everything in the project that asks "how fast is this variant now, how many requests
does it serve on time, what does it cost" asks this module: the simulator's step (through
a scalar fast path in :mod:`adascale_rl.device.physics` that a test ties to this model on
10,000 random cases), the oracle's interval table, the heuristics' and the planner's
predictions, the learned controller's prior (in torch) and the exported selector (in
numpy). The functions take numpy arrays or torch tensors (and Python floats where a
scalar is enough) and return the same kind; nothing here imports torch.

The model, per variant, for one decision interval:

* **isolated service time** ``L``: the catalog's latency (top clock, cores free) scaled by
  the clock (only the compute-bound fraction), times the interval's latency noise
  (interference the profiler did not see; the planners replace it by the slow-down they
  measured).
* **contention** (CPU time-sharing, measured on the reference machine, see
  ``benchmarks/contention.py`` and docs/ENVIRONMENT.md): the app runs ``threads`` threads,
  other processes ``bg_runnable``; while they fit the ``cores`` nothing is slowed. Beyond
  that the OS shares the cores fairly among the ``R = bg_runnable + threads`` runnable
  threads: each gets ``s = cores / R`` of a core, ``m = R / cores - 1`` others per core.
  How that shows in a request's response time depends on whether the app keeps its
  thread busy (demand ``u = rate x L`` at or above its share ``s``: *saturated*) or sleeps
  between requests (*sleeper*; between 80 % and 100 % of the share the two blend linearly). The
  demand counts the requests the app serves: a sleeper whose wait for a core at wake-up outlasts the
  time to the next request has that one supersede the waiting one (latest-frame semantics), and
  never runs the superseded request, and the wait holds the app only up to the next one's arrival
  (v4; before, an app beside 6 busy processes at 400 Hz counted as saturated that the Intel VM
  measured as a sleeper; counting the whole wait, the sleeper regime lost twice the requests
  measured beside 4, docs/BENCHMARKS.md):

  - saturated: preemptions arrive while the thread runs (Poisson, one every
    ``tau = w / m`` ms of running) and each costs a wait ``w = tick x max(1, m)``
    (the other threads' time slices); mean service ``L (1 + m) = L / s`` (fair share),
    and the request served next is the latest to arrive, which has waited half the time between
    two requests on average (half a service where a service is shorter; v4: before, half a
    service whatever the rate, which over-predicted the requests served at 400 Hz by up to 118 %);
  - sleeper: a request wakes the thread; with probability
    ``q = min(1, wake_wait x m) x (1 - exp(-L / wake_lag))`` the wake-up waits
    ``0.9 tick`` on average for a core; the thread then runs its
    wake slice undisturbed and the rest at the tick's mercy: for short runs a preemption at
    the next tick (chance ``c x run / tick``) that waits the others' slices, ``w`` as above,
    the fair share for long ones
    (``extra = c x min(L - slice, tick) x max(1, m) + max(0, L - slice - tick) x m``, where
    ``c = min(1, R - cores)`` is the chance that one of the app's threads shares its core;
    measured beside 6 busy processes on 2 cores, m = 2.5: the live loop's full fp32 model,
    2.78 ms in the catalog, answered in 12.6-15.2 ms on average where a wait of one tick
    predicted 7.8 ms (this form: 9.4), see docs/LIVE.md);
  - **co-runners slow the service itself** (``corun_stretch``, a host constant, 0 by default): while
    other threads keep the cores the app does not use busy, its service takes
    ``L x (1 + corun_stretch x b)``, ``b = min(1, bg_runnable / max(1, cores - threads))`` the share of
    those cores kept busy (caches, memory bandwidth, a virtual machine's SMT siblings or shared
    clock; the energy of the work stays as profiled). Measured on the 2-vCPU AMD EPYC VM on
    2026-12-03 (``benchmarks/contention.py --corun measured``): one busy process beside the
    inference, which leaves it a core of its own, lengthened the back-to-back service by 3-21 %
    (medians over four variants 0.199 and 0.148 in two runs, docs/BENCHMARKS.md); the profile of
    2026-12-01 on the same kind of VM had found none (0.004). ``adascale-rl calibrate`` (one thread by
    default) and ``profile`` (where its catalog's threads leave a core free) fit it;
  - a thread that slept pays a wake-up cost, whether its core idled meanwhile (idle-state
    exit) or ran another thread (caches that thread left cold): measured on the reference
    machine with and without busy processes,
    ``(idle_wake + idle_wake_per_ms x L) x (1 - exp(-sleep / idle_sleep))``; in a world whose variants a
    live probe measured off that line, times each variant's own factor (``wake_scale``, 1 in an app's model).

  The delays make a request's response time a mixture: undisturbed (log-normal: the frame
  jitter ``sigma`` widened by the wake-up cost's own spread, ``wake_cv`` x its mean), or delayed
  by the mean delay given a delay: preemption while running as a second log-normal point,
  a wait for a core at wake-up as an exponential wait with that mean. Misses come from that
  tail. (Measured on the reference machine at 400 Hz beside 2 and 4 busy processes,
  ``benchmarks/contention.py --rate 400``: about half the requests that wait at wake-up wait
  longer than the 2.5 ms between two requests, for every variant and load, as an exponential
  wait of mean 0.9 tick gives; the wait does not shrink with the time between requests.)
* **serving**: requests arrive every ``1 / rate``; the app serves at most
  ``1000 / (mean wall time per request)`` per second and drops the excess (latest-frame
  semantics); requests arriving while a variant loads are dropped; a request that has waited
  past its deadline before it is served is dropped as stale; a served request is on time
  when its response time is within the deadline.
* **energy** (one rule for measured and derived catalogs): ``energy_mj`` is dynamic energy
  above idle per inference at the reference point; it scales as ``(f / f_max) ^ k`` with
  the clock, times the clock's latency factor (work takes longer at a lower clock), times
  the noise; waiting for a core costs the app nothing. Loading a variant keeps one core
  busy for the load time.
* **memory**: a variant needs its peak; a switch needs old + new - the runtime overhead
  (one process holds it once); after an OOM kill nothing is resident.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np

# ---------------------------------------------------------------------------- array backends

_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_P = 0.3275911
_SQRT1_2 = math.sqrt(0.5)


class _Numpy:
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    log2 = staticmethod(np.log2)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    where = staticmethod(np.where)
    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def clip(x, lo=None, hi=None):
        # the same numbers as np.clip, without its wrapper's overhead (one ufunc per side; the vector
        # environment calls this ~30 times a step)
        if hi is None:
            return np.maximum(x, lo)
        if lo is None:
            return np.minimum(x, hi)
        return np.minimum(np.maximum(x, lo), hi)

    @staticmethod
    def sum_last(x):
        """Sum over the last axis, keeping it (``(B, n)`` -> ``(B, 1)``)."""
        return np.sum(x, axis=-1, keepdims=True)

    @staticmethod
    def concat_last(xs):
        return np.concatenate(xs, axis=-1)


class _Torch:
    def __init__(self, torch):
        self.t = torch
        self.exp, self.log, self.abs, self.sign = torch.exp, torch.log, torch.abs, torch.sign
        self.log2 = torch.log2
        self.sqrt = torch.sqrt

    def minimum(self, a, b):
        return self.t.minimum(*self._tensors(a, b))

    def maximum(self, a, b):
        return self.t.maximum(*self._tensors(a, b))

    def where(self, c, a, b):
        a, b = self._tensors(a, b)
        return self.t.where(c, a, b)

    def clip(self, x, lo=None, hi=None):
        return self.t.clamp(x, lo, hi)

    def sum_last(self, x):
        return x.sum(-1, keepdim=True)

    def concat_last(self, xs):
        return self.t.cat(list(xs), dim=-1)

    def _tensors(self, a, b):
        t = self.t
        ref = a if isinstance(a, t.Tensor) else b
        if not isinstance(a, t.Tensor):
            a = t.as_tensor(a, dtype=ref.dtype)
        if not isinstance(b, t.Tensor):
            b = t.as_tensor(b, dtype=ref.dtype)
        return a, b


_NUMPY = _Numpy()
_TORCH: _Torch | None = None


def namespace(*xs: Any):
    """The array functions for these values: torch's if any is a torch tensor, else numpy's."""
    global _TORCH
    for x in xs:
        if type(x).__module__.startswith("torch"):
            if _TORCH is None:
                import torch

                _TORCH = _Torch(torch)
            return _TORCH
    return _NUMPY


def erf(x, xp=None):
    """Error function, Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).

    One formula for numpy, torch and the exported ONNX graph, so that every copy of the
    model computes the same number; ``math.erf`` agrees to 1.5e-7
    (``tests/device/test_model.py``).
    """
    xp = xp or namespace(x)
    ax = xp.abs(x)
    t = 1.0 / (1.0 + _P * ax)
    a1, a2, a3, a4, a5 = _A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return xp.sign(x) * (1.0 - poly * xp.exp(-ax * ax))


def erf_scalar(x: float) -> float:
    """:func:`erf` for one Python float (the simulator's fast path)."""
    ax = -x if x < 0.0 else x
    t = 1.0 / (1.0 + _P * ax)
    a1, a2, a3, a4, a5 = _A
    y = 1.0 - ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t * math.exp(-ax * ax)
    return -y if x < 0.0 else y


def normal_cdf(z, xp=None):
    """P(N(0, 1) <= z) with :func:`erf`."""
    xp = xp or namespace(z)
    return 0.5 * (1.0 + erf(z * _SQRT1_2, xp))


# ---------------------------------------------------------------------------- constants

#: per-frame latency dispersion within one interval (log-normal sigma). Derived:
#: the Pi 4 ShuffleNetV2 report in CALIBRATION.md (60 ms best, spikes to 128 ms)
#: is modelled by step-level spikes; within an interval frames vary by ~10 %.
FRAME_SIGMA = 0.10

#: the wake-up cost's standard deviation over its mean, by default (``Scheduler.wake_cv``; a host's own is measured
#: by the live probe, ``adascale_rl.elastic.contention.fit_wake_cv``): a gamma distribution of shape 2 (derived: on the
#: reference machine the response time of a sleeping app's requests had its p95 about 2.2 x the mean wake-up
#: cost above the service time, benchmarks/contention.py; a gamma of shape 2 has its p95 at 2.37 x its mean)
WAKE_CV = math.sqrt(0.5)


@dataclass(frozen=True)
class Scheduler:
    """How the OS shares the cores, as it shows in an app's response times.

    Measured on the reference machine and fitted by ``adascale-rl profile`` (for this host)
    or taken as documented defaults (derived presets); see ``envs/devices/*.yaml`` for
    each value's source.
    """

    tick_ms: float = 4.0            # the scheduler tick (CONFIG_HZ=250)
    wake_slice_ms: float = 1.5      # a woken thread's undisturbed run (EEVDF base slice)
    wake_wait: float = 0.4          # chance of waiting for a core at wake-up, per extra runnable thread per core
    wake_lag_ms: float = 0.5        # ... growing with the previous run's length on this scale
    idle_wake_ms: float = 0.2       # idle wake-up cost of a sleeping thread on an idle core
    idle_wake_per_ms: float = 0.1   # ... plus this much per ms of service (cache refill)
    idle_sleep_ms: float = 2.3      # ... reached after sleeping this long (shallower idle states before)
    wake_cv: float = WAKE_CV        # the wake-up cost's standard deviation over its mean
    corun_stretch: float = 0.0      # the service's lengthening with every core the app does not use kept busy

    @classmethod
    def of(cls, device: Any) -> "Scheduler":
        """The device's constants (``wake_cv`` and ``corun_stretch`` optional: a device that does not carry them has
        the defaults)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: float(getattr(device, k) if k not in OPTIONAL_SCHEDULER else
                                getattr(device, k, fields[k].default)) for k in fields})


#: the scheduler's constants a device (and an exported table) may leave out, taking their defaults
OPTIONAL_SCHEDULER = ("wake_cv", "corun_stretch")


def corun_ms(lat_ms, bg_runnable, cores: float, threads: float, sched: Scheduler, xp=None):
    """The service time ``lat_ms`` beside ``bg_runnable`` other runnable threads: lengthened by
    ``corun_stretch`` x the share of the cores the app's ``threads`` leave that those threads keep busy (the
    module doc). ``lat_ms`` itself where the host has no stretch."""
    if not sched.corun_stretch:
        return lat_ms
    xp = xp or namespace(lat_ms, bg_runnable)
    busy = xp.clip(bg_runnable / max(cores - threads, 1.0), 0.0, 1.0)
    return lat_ms * (1.0 + sched.corun_stretch * busy)


#: the range a variant's wake-up cost over the scheduler's line may take in a world (``VariantTable.on_host``'s
#: ``wake_scale``; derived: the probes of the Intel VM's two full live benches measured 0.58-1.87x, docs/LIVE.md
#: "Per-variant wake-up costs"; a factor beyond ten is a timing gone wrong)
WAKE_SCALE_RANGE = (0.1, 10.0)


#: the share of its fair share at which an app's requests start to queue behind each other (derived:
#: an assumption that makes the sleeper and saturated regimes meet without a jump; the contention
#: benchmark measures both regimes, not the boundary)
SATURATION_ONSET = 0.8



class Contention(NamedTuple):
    """A request's response time as a mixture (undisturbed, or delayed by an exponential wait), and the app's
    capacity."""

    p_delay: Any       # probability that a request is delayed (preempted or waits at wake-up)
    delay_ms: Any      # the mean delay, given one (an exponential wait)
    base_ms: Any       # the undelayed response time: service + wake-up cost + queueing
    capacity_hz: Any   # requests per second the app can serve (1000 / mean wall time per request)
    spread_ms: Any = 0.0  # standard deviation of the wake-up cost, added to both points' frame jitter
    wake_frac: Any = 0.0  # share of the delayed requests whose delay is a wait for a core at wake-up


def contention(lat_ms, rate_hz, bg_runnable, cores: float, threads: float, sched: Scheduler, xp=None,
               wake_scale=1.0) -> Contention:
    """Response-time mixture of requests with isolated service time ``lat_ms`` (see the module doc).

    Every argument broadcasts; ``cores``, ``threads`` and ``sched`` are device constants. ``wake_scale``
    multiplies the wake-up cost (per variant where a host's probe measured variants off the line
    ``idle_wake + idle_wake_per_ms x L``: a world's table, :meth:`VariantTable.on_host`; 1 in an app's model).
    """
    xp = xp or namespace(lat_ms, rate_hz, bg_runnable)
    lat_ms = corun_ms(lat_ms, bg_runnable, cores, threads, sched, xp)
    tick = sched.tick_ms
    over = xp.clip((bg_runnable + threads) / cores - 1.0, 0.0, None)          # m: extra runnable per core
    share = 1.0 / (1.0 + over)
    period_ms = 1000.0 / xp.clip(rate_hz, 1e-9, None)
    demand = lat_ms / period_ms                                                 # u = rate x L
    # saturated: Poisson preemptions while running, each a wait of the others' slices
    wait = tick * xp.clip(over, 1.0, None)
    lam = lat_ms * over / wait
    p_sat = 1.0 - xp.exp(-lam)
    extra_sat = lat_ms * over                                                   # fair share: L / s - L
    # the request served next is the latest to arrive (latest-frame semantics): it has waited half the time
    # between two requests on average, or half a service where a service is shorter
    queue_sat = 0.5 * xp.minimum(lat_ms * (1.0 + over), period_ms)
    # sleeper: a wait for a core at wake-up, then the wake slice, then the tick
    q = xp.clip(sched.wake_wait * over, None, 1.0) * (1.0 - xp.exp(-lat_ms / sched.wake_lag_ms))
    wake_ms = 0.9 * tick
    run = xp.clip(lat_ms - sched.wake_slice_ms, 0.0, None)
    # chance that one of the app's threads shares its core: the runnable threads beyond the cores, up to one
    shares = xp.clip(bg_runnable + threads - cores, 0.0, 1.0)
    p_run = shares * xp.clip(run / tick, None, 1.0)
    extra_run = shares * xp.clip(run, None, tick) * xp.clip(over, 1.0, None) + xp.clip(run - tick, 0.0, None) * over
    p_sleep = 1.0 - (1.0 - q) * (1.0 - p_run)
    extra_sleep = q * wake_ms + extra_run
    asleep_ms = xp.clip(period_ms - lat_ms, 0.0, None)
    idle_ms = wake_scale * (sched.idle_wake_ms + sched.idle_wake_per_ms * lat_ms) * (
        1.0 - xp.exp(-asleep_ms / sched.idle_sleep_ms))
    # between the regimes: as the demand nears the fair share, a growing part of the requests finds the
    # previous one still running and is served back to back (linear from 80 % of the share to all of it); the
    # demand is that of the requests the app serves: a wait at wake-up longer than the time to the next request
    # lets that one supersede the waiting one, which the app never runs
    superseded = q * xp.exp(-period_ms / wake_ms)
    theta = xp.clip((demand * (1.0 - superseded) / share - SATURATION_ONSET) / (1.0 - SATURATION_ONSET), 0.0, 1.0)
    idle = idle_ms
    p = (1.0 - theta) * p_sleep + theta * p_sat
    extra = (1.0 - theta) * extra_sleep + theta * extra_sat
    base = lat_ms + (1.0 - theta) * idle + theta * queue_sat
    delay = xp.where(p > 1e-12, extra / xp.clip(p, 1e-12, None), 0.0)
    # the app's time per request: a wait at wake-up that outlasts the time to the next request holds the app once
    # for the requests it supersedes, so it counts up to one period, E[min(W, period)] (v4)
    wall = lat_ms + extra + (1.0 - theta) * idle - (1.0 - theta) * superseded * wake_ms
    # the share of the delay that is waiting for a core at wake-up (exponential), not preemption while running
    wake_frac = xp.where(extra > 1e-12, (1.0 - theta) * q * wake_ms / xp.clip(extra, 1e-12, None), 0.0)
    return Contention(p, delay, base, 1000.0 / wall, sched.wake_cv * (1.0 - theta) * idle, wake_frac)


class Serving(NamedTuple):
    served_frac: Any     # requests answered / requests issued
    on_time_frac: Any    # requests answered within the deadline / requests issued
    mean_ms: Any         # mean response time of the requests served (a stale one is not)
    served: Any          # requests answered in the interval


def serve(c: Contention, rate_hz, deadline_ms, open_s, dt_s, sigma: float, xp=None) -> Serving:
    """Serve requests at ``rate_hz`` for ``dt_s`` seconds, ``open_s`` of them not blocked by a load.

    The undelayed response time is log-normal with ``sigma`` around its median (the mean is
    ``median x exp(sigma^2 / 2)``). A delayed request is delayed by the mean delay: the part of
    it that is preemption while running as a point (log-normal like the undelayed one), the
    part that is waiting for a core at wake-up (``wake_frac``) as an exponential wait with that
    mean (when a wait for a core ends does not depend on how long it has lasted). A request
    that has waited past the deadline for a core at wake-up is dropped as stale (a miss the
    app does not compute); one that finishes past it is late.
    """
    xp = xp or namespace(c.base_ms, rate_hz, deadline_ms, open_s)
    issued = rate_hz * dt_s
    capacity = xp.minimum(rate_hz * open_s, c.capacity_hz * open_s)
    delay = xp.clip(c.delay_ms, 1e-9, None)
    waits = c.p_delay * c.wake_frac
    stale = stale_share(c, deadline_ms, xp)
    served = capacity * (1.0 - stale)
    served_frac = xp.where(issued > 0.0, served / xp.clip(issued, 1e-12, None), 1.0)
    log_d = xp.log(deadline_ms)
    lo_z, lo_s = _log_point(c.base_ms, c.spread_ms, sigma, xp)
    hi_z, hi_s = _log_point(c.base_ms + c.delay_ms, c.spread_ms, sigma, xp)
    within_lo = normal_cdf((log_d - lo_z) / lo_s, xp)
    # waited at wake-up: the undelayed part within the deadline, and the wait within what its mean leaves
    slack = xp.clip(deadline_ms - c.base_ms * math.exp(0.5 * sigma * sigma), 0.0, None)
    within_wait = within_lo * (1.0 - xp.exp(-slack / delay))
    within = ((1.0 - c.p_delay) * within_lo + waits * within_wait
              + (c.p_delay - waits) * normal_cdf((log_d - hi_z) / hi_s, xp))
    on_time = xp.where(issued > 0.0, capacity / xp.clip(issued, 1e-12, None) * within, 1.0)
    return Serving(served_frac, on_time, served_mean_ms(c, deadline_ms, sigma, xp), served)


def stale_share(c: Contention, deadline_ms, xp=None):
    """The share of the requests the app reaches that it drops as stale: those whose wait for a core at wake-up
    outlasts the deadline (the top of the response-time mixture; the requests beyond the app's capacity are lost
    whatever their response time would have been)."""
    xp = xp or namespace(c.delay_ms, deadline_ms)
    return c.p_delay * c.wake_frac * xp.exp(-deadline_ms / xp.clip(c.delay_ms, 1e-9, None))


def served_mean_ms(c: Contention, deadline_ms, sigma: float, xp=None):
    """Mean response time of the requests served (the stale ones, dropped, are not): the undelayed mean, the
    preempted ones' delay, and the waits at wake-up within the deadline, ``E[W; W <= d] = D - (d + D)
    exp(-d / D)``, over the share served. What an app measures."""
    xp = xp or namespace(c.base_ms, deadline_ms)
    delay = xp.clip(c.delay_ms, 1e-9, None)
    tail = xp.exp(-deadline_ms / delay)
    waits = c.p_delay * c.wake_frac
    waited = (c.p_delay - waits) * c.delay_ms + waits * (delay - (deadline_ms + delay) * tail)
    return c.base_ms * math.exp(0.5 * sigma * sigma) + waited / (1.0 - waits * tail)


def _log_point(center_ms, spread_ms, sigma: float, xp):
    """(log median, log sd) of one point of the mixture: log-normal with the frame jitter ``sigma``
    around ``center_ms`` (mean ``center x exp(sigma^2 / 2)``), widened to add the variance of the
    wake-up cost (``spread_ms``) with the same mean."""
    ef = math.exp(sigma * sigma) - 1.0
    rel = spread_ms / (center_ms * math.exp(0.5 * sigma * sigma))
    s2 = xp.log(1.0 + ef + rel * rel)
    return xp.log(center_ms) + 0.5 * sigma * sigma - 0.5 * s2, xp.sqrt(s2)


def response_quantile(c: Contention, q: float, sigma: float) -> float:
    """The ``q`` quantile of one request's response time (scalars; by bisection, for reports and tests): the
    mixture :func:`serve` uses, a stale request counted at its wait."""
    return mixture_quantile(((1.0, c),), q, sigma)


def mixture_quantile(parts: Sequence[tuple[float, Contention]], q: float, sigma: float) -> float:
    """The ``q`` quantile of the response time of requests drawn from several contexts' mixtures, ``(weight,
    Contention)`` each (the weights summing to 1): :func:`response_quantile` over intervals whose service differs
    (the simulator's latency noise, ``adascale_rl.environment.env.noise_quadrature``). Scalars, by bisection."""
    cdfs = [(float(w), _response_cdf(c, sigma)) for w, c in parts]
    if not cdfs:
        raise ValueError("mixture_quantile needs at least one part")
    total = sum(w for w, _ in cdfs)
    if not (all(w >= 0.0 for w, _ in cdfs) and abs(total - 1.0) <= 1e-9 and 0.0 < q < 1.0):
        raise ValueError(f"mixture_quantile needs weights >= 0 summing to 1 (they sum to {total!r}) and 0 < q < 1 "
                         f"(q = {q!r})")
    lo = min(float(c.base_ms) for _, c in parts) * 0.1
    hi = max(float(c.base_ms) + 50.0 * max(float(c.delay_ms), 1e-9) for _, c in parts) * 10.0
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if sum(w * cdf(mid) for w, cdf in cdfs) < q else (lo, mid)
    return math.sqrt(lo * hi)


def _response_cdf(c: Contention, sigma: float):
    """The distribution function of one request's response time under ``c`` (ms -> probability; scalars)."""
    lo_z, lo_s = (float(v) for v in _log_point(np.float64(c.base_ms), np.float64(c.spread_ms), sigma, _NUMPY))
    hi_z, hi_s = (float(v) for v in _log_point(np.float64(c.base_ms + c.delay_ms), np.float64(c.spread_ms), sigma,
                                               _NUMPY))
    mean_lo = float(c.base_ms) * math.exp(0.5 * sigma * sigma)
    p, delay = float(c.p_delay), max(float(c.delay_ms), 1e-9)
    waits = p * float(c.wake_frac)

    def cdf(x: float) -> float:
        lx = math.log(x)
        lo = 0.5 * (1.0 + math.erf((lx - lo_z) / lo_s * _SQRT1_2))
        hi = 0.5 * (1.0 + math.erf((lx - hi_z) / hi_s * _SQRT1_2))
        return (1.0 - p) * lo + waits * lo * (1.0 - math.exp(-max(x - mean_lo, 0.0) / delay)) + (p - waits) * hi

    return cdf


def clock_factor(compute_bound_frac, freq_mhz, f_max_mhz: float):
    """Latency multiplier from running below the top clock: only the compute-bound part scales."""
    return compute_bound_frac * (f_max_mhz / freq_mhz) + (1.0 - compute_bound_frac)


# ---------------------------------------------------------------------------- one device and catalog

class VariantTable:
    """The constants of a catalog on a device, as arrays (one entry per variant) and numbers.

    ``arrays()`` is what a torch module registers as buffers; every function below takes
    the table and works on whatever array kind its context arguments are.
    """

    ARRAYS = ("latency_ms", "compute_bound_frac", "energy_mj", "peak_mem_mb", "accuracy", "load_ms")

    def __init__(self, device: Any, catalog: Any, sigma: float):
        v = catalog.variants
        self.latency_ms = np.array([x.latency_ms for x in v], dtype=np.float64)
        self.compute_bound_frac = np.array([x.compute_bound_frac for x in v], dtype=np.float64)
        self.energy_mj = np.array([x.energy_mj for x in v], dtype=np.float64)
        self.peak_mem_mb = np.array([x.peak_mem_mb for x in v], dtype=np.float64)
        self.accuracy = np.array([x.accuracy for x in v], dtype=np.float64)
        self.load_ms = np.array([load_ms(x, device) for x in v], dtype=np.float64)
        self.n = len(v)
        self.cores = float(device.cores)
        self.threads = float(catalog.threads if catalog.threads is not None else device.cores)
        self.f_max_mhz = float(device.f_max_mhz)
        self.freq_exponent = float(device.freq_exponent)
        self.dyn_w_max = float(device.dyn_w_max)
        self.mem_total_mb = float(device.mem_total_mb)
        self.overhead_mb = float(catalog.runtime_overhead_mb)
        self.sigma = float(sigma)
        self.sched = Scheduler.of(device)

    #: a world's per-variant factor on the wake-up cost (:meth:`on_host`); absent from an app's table
    wake_scale: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in self.ARRAYS}
        if self.wake_scale is not None:
            out["wake_scale"] = self.wake_scale
        return out

    def on_host(self, service_scale: float | Sequence[float] | np.ndarray,
                wake_scale: float | Sequence[float] | np.ndarray | None = None) -> "VariantTable":
        """The table of the simulated world on a host ``service_scale`` times slower than the catalog (a
        preset's ``service_scale``, or one factor per variant where a host speeds its variants up unevenly):
        every variant's service time and the energy of its work scaled, as a persistent latency noise would
        scale them; memory, accuracy and load times as they are. ``wake_scale`` (one factor per variant, or
        one for all): each variant's wake-up cost over the scheduler's line (a host whose variants wake up
        unevenly, as a live run's probe measures them; :func:`contention`'s ``wake_scale``, which
        :func:`outcome` reads from ``arrays()["wake_scale"]``; None keeps this table's). ``self`` if neither
        changes anything."""
        scale = np.broadcast_to(np.asarray(service_scale, dtype=np.float64), self.latency_ms.shape)
        wake = self.wake_scale if wake_scale is None else np.broadcast_to(
            np.asarray(wake_scale, dtype=np.float64), self.latency_ms.shape).copy()
        if wake is not None and np.all(wake == 1.0):
            wake = None
        if np.all(scale == 1.0) and wake is self.wake_scale:
            return self
        t = copy.copy(self)
        t.latency_ms = self.latency_ms * scale
        t.energy_mj = self.energy_mj * scale
        t.wake_scale = wake
        return t

    def to_dict(self) -> dict:
        """Every constant as plain numbers and lists (JSON; the learned controller saves it, the exporter writes it;
        a world's ``wake_scale`` too, where it has one)."""
        out = {**{k: getattr(self, k).tolist() for k in self.ARRAYS}, **self.scalars(),
               "scheduler": {k: getattr(self.sched, k) for k in Scheduler.__dataclass_fields__}}
        if self.wake_scale is not None:
            out["wake_scale"] = self.wake_scale.tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "VariantTable":
        """The table :meth:`to_dict` wrote (no catalog or preset needed)."""
        t = cls.__new__(cls)
        for k in cls.ARRAYS:
            setattr(t, k, np.asarray(d[k], dtype=np.float64))
        t.n = len(t.latency_ms)
        for k in ("cores", "threads", "f_max_mhz", "freq_exponent", "dyn_w_max", "mem_total_mb", "overhead_mb",
                  "sigma"):
            setattr(t, k, float(d[k]))
        t.sched = Scheduler(**{k: float(v) for k, v in d["scheduler"].items()})
        if d.get("wake_scale") is not None:
            t.wake_scale = np.asarray(d["wake_scale"], dtype=np.float64)
        return t

    def scalars(self) -> dict[str, float]:
        return {"cores": self.cores, "threads": self.threads, "f_max_mhz": self.f_max_mhz,
                "freq_exponent": self.freq_exponent, "dyn_w_max": self.dyn_w_max, "mem_total_mb": self.mem_total_mb,
                "overhead_mb": self.overhead_mb, "sigma": self.sigma}


def load_ms(variant: Any, device: Any) -> float:
    """Time to bring a variant in: read its file, then initialise it."""
    return 1000.0 * variant.size_mb / device.storage_read_mb_s + device.model_init_ms


class Outcome(NamedTuple):
    """Per variant, one interval: what serving it gives (arrays broadcast over the context)."""

    latency_ms: Any      # isolated service time L at this clock, with the noise
    contention: Contention
    serving: Serving
    energy_j: Any        # inference (and loading) energy above idle


def outcome(t: VariantTable, arrays: dict, *, freq_mhz, bg_runnable, rate_hz, deadline_ms, dt_s: float,
            noise=1.0, loading=False, sigma: float | None = None, xp=None) -> Outcome:
    """What every variant does in one interval: ``arrays`` is ``t.arrays()`` (numpy) or the same as
    tensors; the context arguments broadcast against them (``(B, 1)`` against ``(n,)`` gives
    ``(B, n)``). ``loading``: the variant is being loaded this interval (a switch, or a restart
    after an OOM kill), so requests arriving during its load time are dropped. ``sigma``
    replaces the table's frame jitter (a planner's assumption). A world's ``arrays`` may hold
    ``wake_scale`` (:meth:`VariantTable.on_host`)."""
    xp = xp or namespace(arrays["latency_ms"], freq_mhz, bg_runnable)
    cf = clock_factor(arrays["compute_bound_frac"], freq_mhz, t.f_max_mhz)
    lat = arrays["latency_ms"] * cf * noise
    c = contention(lat, rate_hz, bg_runnable, t.cores, t.threads, t.sched, xp, arrays.get("wake_scale", 1.0))
    load_s = arrays["load_ms"] * 0.001
    open_s = xp.where(loading, xp.clip(dt_s - load_s, 0.0, None), dt_s) if not isinstance(loading, bool) else (
        xp.clip(dt_s - load_s, 0.0, None) if loading else dt_s)
    s = serve(c, rate_hz, deadline_ms, open_s, dt_s, t.sigma if sigma is None else sigma, xp)
    fk = freq_factor(t, freq_mhz)
    energy = s.served * arrays["energy_mj"] * 0.001 * fk * cf * noise
    load_j = load_energy_j(t, load_s, fk, dt_s, xp)
    if isinstance(loading, bool):
        energy = energy + load_j if loading else energy
    else:
        energy = energy + xp.where(loading, load_j, 0.0)
    return Outcome(lat, c, s, energy)


def freq_factor(t: VariantTable, freq_mhz):
    """Dynamic power (and energy per unit of work) at ``freq_mhz`` relative to the top clock: ``(f / f_max) ^ k``."""
    return (freq_mhz / t.f_max_mhz) ** t.freq_exponent


def load_energy_j(t: VariantTable, load_s, fk, dt_s: float, xp=None):
    """Energy above idle of loading a variant in one interval: one of the cores busy for its load time
    (``load_s``, at most the interval) at the clock's dynamic power (``fk``: :func:`freq_factor`). Spent even
    when the load ends in an OOM kill."""
    xp = xp or namespace(load_s, fk)
    return t.dyn_w_max * fk / t.cores * xp.clip(load_s, None, dt_s)


def expected_latency_ms(t: VariantTable, arrays: dict, *, freq_mhz, bg_runnable, rate_hz, deadline_ms, noise=1.0,
                        xp=None):
    """The mean response time an app's performance model expects of every variant's served requests: the
    prediction the measured latency is compared with (the observation's slow-down, with ``noise`` 1), and
    what the greedy heuristics threshold on (with their measured slow-down as ``noise``)."""
    xp = xp or namespace(arrays["latency_ms"], freq_mhz, bg_runnable)
    lat = arrays["latency_ms"] * clock_factor(arrays["compute_bound_frac"], freq_mhz, t.f_max_mhz) * noise
    c = contention(lat, rate_hz, bg_runnable, t.cores, t.threads, t.sched, xp)
    return served_mean_ms(c, deadline_ms, t.sigma, xp)


def switch_mem_mb(peak_mem_mb: Sequence[float] | np.ndarray, loaded_peak_mb, overhead_mb: float, killed=False):
    """Memory a switch to each variant needs: new + old - the shared runtime overhead (new alone after a kill)."""
    if isinstance(killed, bool):
        return peak_mem_mb if killed else peak_mem_mb + loaded_peak_mb - overhead_mb
    xp = namespace(peak_mem_mb, loaded_peak_mb)
    return xp.where(killed, peak_mem_mb, peak_mem_mb + loaded_peak_mb - overhead_mb)
