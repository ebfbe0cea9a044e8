"""Heuristic controllers a good engineer would actually ship.

Each uses only what a device knows: the observation (decoded with the shared
encoder), the catalog of profiled variants, the measured feedback in ``info`` and
the action mask. None reads the simulator's hidden state. Their latency model is
the app's performance model, :mod:`adascale_rl.device.model` (the one the simulator
uses, without its noise): catalog latency scaled by the measured clock, and the
response-time effect of sharing the cores with the measured background run queue.
The simulated world adds noise, spikes, heating and throttling on top; the
feedback-corrected heuristics learn a slow-down factor from the latencies they observe.

Tunable margins are listed in ``PARAM_GRID`` per class; the evaluation harness
tunes them on the train split, never on test.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from adascale_rl.device import model
from adascale_rl.environment.actions import KEEP, action_for
from adascale_rl.environment.observation import decode_planning
from adascale_rl.policies.base import BasePolicy
from adascale_rl.policies.planning import action_values, predicted_rewards


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
        return action_for(self.target, loaded)


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

    # --- the performance model's prediction, corrected by subclasses
    def slowdown(self) -> float:
        return 1.0

    def observe(self, ctx: Mapping[str, Any], info: Mapping[str, Any]) -> None:
        """Update from the last interval's measured latency (feedback-corrected subclasses)."""

    def predicted_ms(self, ctx: Mapping[str, Any], slowdown: float | None = None) -> np.ndarray:
        """Mean response time of every variant in the measured context (``ctx``: :func:`decode_planning` of one
        observation), with the slow-down factor on the isolated service time."""
        return model.expected_latency_ms(self.table, self.arrays, freq_mhz=ctx["freq_mhz"][0, 0],
                                         bg_runnable=ctx["bg_runnable"][0, 0], rate_hz=ctx["rate_hz"][0, 0],
                                         deadline_ms=ctx["deadline_ms"][0, 0],
                                         noise=self.slowdown() if slowdown is None else slowdown)

    def reset(self, env: Any) -> None:
        super().reset(env)
        self._acc = self.table.accuracy

    def decode(self, obs) -> dict:
        return decode_planning(np.asarray(obs, dtype=np.float64)[None, :], **self.encoder.constants())

    @staticmethod
    def budget_ms(ctx) -> float:
        rate = float(ctx["rate_hz"][0, 0])
        return min(float(ctx["deadline_ms"][0, 0]), 1000.0 / rate if rate > 0 else math.inf)

    def choose(self, ctx, mask, mem_avail_mb: float) -> int:
        loaded = int(np.argmax(ctx["loaded"][0]))
        budget = self.budget_ms(ctx)
        pred = self.predicted_ms(ctx) * self.margin
        # a switch the mask allows, to a variant that fits the memory measured now on its own
        ok = (np.asarray(mask[1:], dtype=bool) | (np.arange(len(pred)) == loaded)) & (self.table.peak_mem_mb
                                                                                        <= mem_avail_mb)
        if not ok.any():
            return loaded
        fits = ok & (pred <= budget)
        if not fits.any():
            return int(np.flatnonzero(ok)[np.argmin(pred[ok])])
        # most accurate; ties: the loaded one, then the faster
        cand = np.flatnonzero(fits)
        keys = [(self._acc[i], i == loaded, -pred[i]) for i in cand]
        return int(cand[max(range(len(cand)), key=keys.__getitem__)])

    def act(self, obs, info) -> int:
        # the observation holds the context measured over the interval that just ran,
        # which is what the feedback in ``info`` was measured under
        ctx = self.decode(obs)
        if "latency_ms" in info:
            self.observe(ctx, info)
        mem = self.encoder.decode(obs)["mem_avail_mb"]
        target = self.choose(ctx, info["action_mask"], mem)
        return action_for(target, int(np.argmax(ctx["loaded"][0])))


class KalmanGreedyPolicy(GreedyPolicy):
    """Greedy with a Kalman-filtered slow-down factor learned from observed latencies (as ALERT does).

    The filter tracks x = log(observed / predicted latency) of the variant that
    ran, a random walk with process noise ``q`` observed with noise ``r``;
    predictions scale the isolated service time by exp(x).
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
        base = float(self.predicted_ms(ctx, slowdown=1.0)[i])
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
        self._temp_c: float | None = None

    def act(self, obs, info) -> int:
        self._temp_c = self.encoder.decode(obs)["temp_c"]
        return super().act(obs, info)

    def choose(self, ctx, mask, mem_avail_mb: float) -> int:
        target = super().choose(ctx, mask, mem_avail_mb)
        loaded = int(np.argmax(ctx["loaded"][0]))
        if target == loaded:
            return loaded
        pred = self.predicted_ms(ctx) * self.margin
        budget = self.budget_ms(ctx)
        if self._acc[target] > self._acc[loaded]:
            hot = self._temp_c is not None and self._temp_c > self.device.throttle_c - self.temp_margin_c
            roomy = pred[target] <= (1.0 - self.up_gap) * budget
            if pred[loaded] <= budget and (hot or not roomy):
                return loaded
            if hot:
                return loaded
        return target


class PlannerPolicy(KalmanGreedyPolicy):
    """Reward-aware one-step planner.

    Predicts each variant's reward for the coming interval with the performance model
    (with the Kalman slow-down correction and its own frame-jitter margin ``sigma``) and
    the app's own reward (:mod:`adascale_rl.policies.planning`, which the learned
    controller's prior shares), and amortises a switch's cost (lost serving time while
    loading, the switch penalty, the double-resident memory) over ``horizon`` intervals.
    Keeps when no alternative wins by more than ``min_gain``.
    """

    name = "planner"
    PARAM_GRID = {"horizon": [3.0, 8.0, 20.0], "sigma": [0.1, 0.2, 0.3], "q": [0.02, 0.1]}

    def __init__(self, horizon: float = 8.0, sigma: float = 0.2, q: float = 0.02, r: float = 0.05,
                 min_gain: float = 0.0):
        super().__init__(1.0, q, r)
        self.horizon = horizon
        self.sigma = sigma
        self.min_gain = min_gain

    def values(self, ctx) -> np.ndarray:
        """The ``1 + n`` action values of :func:`adascale_rl.policies.planning.action_values`."""
        ctx = {**ctx, "slowdown": np.full((1, 1), self.slowdown())}
        keep, switch = predicted_rewards(self.table, self.arrays, self.reward, ctx, self.sigma, self.period_s)
        return action_values(keep, switch, ctx["loaded"], ctx["killed"], self.horizon)[0]

    def choose(self, ctx, mask, mem_avail_mb: float) -> int:
        loaded = int(np.argmax(ctx["loaded"][0]))
        values = self.values(ctx)
        best, best_v = loaded, values[0]
        margin = 0.0 if bool(ctx["killed"][0, 0]) else self.min_gain  # after a kill every choice loads
        for i in np.argsort(-values[1:], kind="stable"):
            i = int(i)
            if i != loaded and mask[i + 1]:
                if values[i + 1] > best_v + margin:
                    best = i
                break
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
