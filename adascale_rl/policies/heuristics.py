"""Heuristic controllers a good engineer would actually ship.

Each uses only what a device knows: the observation (decoded with the shared
encoder), the catalog of profiled variants, the measured feedback in ``info`` and
the action mask. None reads the simulator's hidden state. Their latency model is
the profiler's: catalog latency scaled by the measured clock (compute-bound part)
and by the cores left free by the measured background load (Amdahl) — the same
model AdaScale's profilers feed their adaptation loop with. The simulated world
adds noise, spikes, heating and throttling on top; the feedback-corrected
heuristics learn a slow-down factor from the latencies they observe.

Tunable margins are listed in ``PARAM_GRID`` per class; the evaluation harness
tunes them on the train split, never on test.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from adascale_rl.device.physics import (dynamic_power_w, effective_cores, inference_power_w, median_latency_ms, serve,
                                        switch_load_ms)
from adascale_rl.policies.base import BasePolicy

KEEP = 0


class StaticPolicy(BasePolicy):
    """Always the same variant (switches to it once, then keeps)."""

    kind = "heuristic"
    PARAM_GRID: dict[str, list] = {}

    def __init__(self, variant: str | int | None = None, which: str = "largest", name: str | None = None):
        self.variant = variant
        self.which = which
        self.name = name or f"static-{which}"

    def reset(self, env: Any) -> None:
        super().reset(env)
        if self.variant is not None:
            self.target = self.variant if isinstance(self.variant, int) else self.catalog.index(self.variant)
        else:
            self.target = self.catalog.largest if self.which == "largest" else self.catalog.smallest

    def act(self, obs, info) -> int:
        loaded = int(np.argmax(obs[-len(self.catalog):]))
        return KEEP if loaded == self.target else self.target + 1


class RandomPolicy(BasePolicy):
    """A random valid action each interval (seeded)."""

    name = "random"
    kind = "heuristic"
    PARAM_GRID: dict[str, list] = {}

    def __init__(self, seed: int = 0, switch_prob: float = 0.1):
        self.rng = np.random.default_rng(seed)
        self.switch_prob = switch_prob

    def act(self, obs, info) -> int:
        if self.rng.random() >= self.switch_prob:
            return KEEP
        valid = np.flatnonzero(np.asarray(info["action_mask"]))
        return int(self.rng.choice(valid))


class GreedyPolicy(BasePolicy):
    """Most accurate variant predicted to meet min(deadline, 1/rate) and fit memory.

    ``margin`` inflates predicted latency (safety factor). This is the loop
    AdaScale's profiler-guided adaptation runs.
    """

    name = "greedy"
    kind = "heuristic"
    PARAM_GRID = {"margin": [1.0, 1.15, 1.3, 1.5]}

    def __init__(self, margin: float = 1.15):
        self.margin = margin

    # --- the profiler's latency model, corrected by subclasses
    def slowdown(self) -> float:
        return 1.0

    def observe(self, ctx: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        """Update from the last interval's measured latency (feedback-corrected subclasses)."""

    def predict_ms(self, i: int, ctx: Mapping[str, Any]) -> float:
        v = self.catalog.variants[i]
        f = ctx["freq_mhz"] or self.device.f_max_mhz
        return median_latency_ms(v, f, self.device.f_max_mhz, self.device.cores, ctx["bg_cpu_util"], self.slowdown())

    def reset(self, env: Any) -> None:
        super().reset(env)
        self._acc = [v.accuracy for v in self.catalog.variants]

    def budget_ms(self, ctx) -> float:
        rate = ctx["request_rate_hz"]
        return min(ctx["deadline_ms"], 1000.0 / rate if rate > 0 else math.inf)

    def choose(self, ctx, mask) -> int:
        budget = self.budget_ms(ctx)
        loaded = ctx["loaded"]
        best, best_key = None, None
        fastest, fastest_ms = loaded, math.inf
        for i in range(len(self.catalog)):
            if not mask[i + 1]:
                continue
            if self.catalog.variants[i].peak_mem_mb > ctx["mem_avail_mb"]:
                continue  # does not fit the memory measured now (the resident one included): avoid an OOM kill
            pred = self.predict_ms(i, ctx) * self.margin
            if pred < fastest_ms:
                fastest, fastest_ms = i, pred
            if pred <= budget:
                key = (self._acc[i], i == loaded, -pred)
                if best_key is None or key > best_key:
                    best, best_key = i, key
        return fastest if best is None else best

    def act(self, obs, info) -> int:
        # the observation holds the context measured over the interval that just ran,
        # which is what the feedback in ``info`` was measured under
        ctx = self.encoder.decode(obs)
        if "latency_ms" in info:
            self.observe(ctx, info)
        target = self.choose(ctx, info["action_mask"])
        return KEEP if target == ctx["loaded"] else target + 1


class KalmanGreedyPolicy(GreedyPolicy):
    """Greedy with a Kalman-filtered slow-down factor learned from observed latencies (as ALERT does).

    The filter tracks x = log(observed / predicted latency) of the variant that
    ran, a random walk with process noise ``q`` observed with noise ``r``;
    predictions are multiplied by exp(x).
    """

    name = "greedy-kalman"
    PARAM_GRID = {"margin": [1.0, 1.1, 1.25], "q": [0.002, 0.02, 0.1]}

    def __init__(self, margin: float = 1.1, q: float = 0.02, r: float = 0.05):
        super().__init__(margin)
        self.q, self.r = q, r

    def reset(self, env: Any) -> None:
        super().reset(env)
        self.x, self.p = 0.0, 0.1

    def slowdown(self) -> float:
        return math.exp(self.x)

    def observe(self, ctx, info) -> None:
        if info.get("oom") or info.get("served_frac", 1.0) <= 0.0:
            return
        i = self.catalog.index(info["variant"])
        v = self.catalog.variants[i]
        f = ctx["freq_mhz"] or self.device.f_max_mhz
        base = median_latency_ms(v, f, self.device.f_max_mhz, self.device.cores, ctx["bg_cpu_util"], 1.0)
        z = math.log(max(info["latency_ms"], 1e-6) / base)
        self.p += self.q
        k = self.p / (self.p + self.r)
        self.x += k * (z - self.x)
        self.p *= 1.0 - k


class HysteresisGreedyPolicy(KalmanGreedyPolicy):
    """Feedback-corrected greedy that upgrades only with headroom and keeps thermal headroom.

    Moves to a more accurate variant only when its prediction is below
    ``(1 - up_gap)`` of the budget and the SoC is more than ``temp_margin_c``
    below the throttle point; downgrades as soon as the loaded variant is
    predicted to miss.
    """

    name = "greedy-hysteresis"
    PARAM_GRID = {"margin": [1.0, 1.1, 1.25], "up_gap": [0.1, 0.25], "temp_margin_c": [3.0, 8.0]}

    def __init__(self, margin: float = 1.1, q: float = 0.02, r: float = 0.05, up_gap: float = 0.15,
                 temp_margin_c: float = 5.0):
        super().__init__(margin, q, r)
        self.up_gap = up_gap
        self.temp_margin_c = temp_margin_c

    def choose(self, ctx, mask) -> int:
        target = super().choose(ctx, mask)
        loaded = ctx["loaded"]
        if target == loaded:
            return loaded
        loaded_pred = self.predict_ms(loaded, ctx) * self.margin
        budget = self.budget_ms(ctx)
        if self._acc[target] > self._acc[loaded]:
            hot = ctx["temp_c"] is not None and ctx["temp_c"] > self.device.throttle_c - self.temp_margin_c
            roomy = self.predict_ms(target, ctx) * self.margin <= (1.0 - self.up_gap) * budget
            if loaded_pred <= budget and (hot or not roomy):
                return loaded
            if hot:
                return loaded
        return target


class PlannerPolicy(KalmanGreedyPolicy):
    """Reward-aware one-step planner.

    Predicts each variant's reward for the coming interval from the catalog (the
    profiler's latency model with the Kalman slow-down correction, the log-normal
    serving model, energy from the profiled energy per inference, memory), using
    the app's own reward weights, and amortises a switch's cost (lost serving
    time while loading, the switch penalty, the double-resident memory) over
    ``horizon`` intervals. Keeps when no alternative wins by more than ``min_gain``.
    """

    name = "planner"
    PARAM_GRID = {"horizon": [3.0, 8.0, 20.0], "sigma": [0.1, 0.2, 0.3], "q": [0.02, 0.1]}

    def __init__(self, horizon: float = 8.0, sigma: float = 0.2, q: float = 0.02, r: float = 0.05,
                 min_gain: float = 0.0):
        super().__init__(1.0, q, r)
        self.horizon = horizon
        self.sigma = sigma
        self.min_gain = min_gain

    def reset(self, env: Any) -> None:
        super().reset(env)
        self.w = self.reward_fn
        self.dt = self.period_s
        self._budget_j = self.device.dyn_w_max * self.dt
        self._load_ms = [switch_load_ms(v, self.device) for v in self.catalog.variants]

    def predicted_reward(self, i: int, ctx, switched: bool) -> float:
        v = self.catalog.variants[i]
        d = self.device
        f = ctx["freq_mhz"] or d.f_max_mhz
        median = self.predict_ms(i, ctx)
        killed = bool(ctx.get("killed"))
        loading = switched or killed  # after an OOM kill even the same variant loads again, alone
        blocked = self._load_ms[i] if loading else 0.0
        s = serve(median, ctx["request_rate_hz"], ctx["deadline_ms"], self.dt, blocked, self.sigma)
        energy = inference_power_w(v, d, f, effective_cores(d.cores, ctx["bg_cpu_util"])) * s.busy_s
        mem = v.peak_mem_mb
        if loading:
            energy += dynamic_power_w(d, f, 1.0 / d.cores) * min(blocked / 1000.0, self.dt)
        if switched and not killed:
            mem += self.catalog.variants[ctx["loaded"]].peak_mem_mb - self.catalog.runtime_overhead_mb
        t = self.w.terms(v.accuracy, s.on_time_frac, energy / self._budget_j, mem / d.mem_total_mb, switched, False)
        return sum(t)

    def choose(self, ctx, mask) -> int:
        loaded = ctx["loaded"]
        keep_r = self.predicted_reward(loaded, ctx, False)
        if ctx.get("killed"):  # nothing is resident: every choice loads; no amortisation to weigh
            best, best_v = loaded, keep_r
            for i in range(len(self.catalog)):
                if i != loaded and mask[i + 1]:
                    v = self.predicted_reward(i, ctx, True)
                    if v > best_v:
                        best, best_v = i, v
            return best
        best, best_v = loaded, keep_r
        for i in range(len(self.catalog)):
            if i == loaded or not mask[i + 1]:
                continue
            steady = self.predicted_reward(i, ctx, False)
            first = self.predicted_reward(i, ctx, True)
            # amortise: the first interval pays the switch, the next horizon-1 run steady
            value = (first + (self.horizon - 1.0) * steady) / self.horizon
            if value > best_v + self.min_gain:
                best, best_v = i, value
        return best


HEURISTICS = {
    "static-largest": lambda: StaticPolicy(which="largest"),
    "static-smallest": lambda: StaticPolicy(which="smallest"),
    "best-fixed": lambda: StaticPolicy(which="largest", name="best-fixed"),  # variant chosen on train by the harness
    "random": lambda: RandomPolicy(),
    "greedy": GreedyPolicy,
    "greedy-kalman": KalmanGreedyPolicy,
    "greedy-hysteresis": HysteresisGreedyPolicy,
    "planner": PlannerPolicy,
}
