"""Reference controllers that read the simulator: not deployable, they bound what a controller can reach.

* :class:`ExactOneStepPolicy` — each interval, simulates every action one step with
  the true simulator state, the true coming context and the true noise draw, and
  takes the best immediate reward (myopic).
* :class:`OraclePolicy` — clairvoyant: knows the whole future trace and noise of the
  episode and plans over it with approximate dynamic programming. The endogenous
  thermal and battery state make the exact problem continuous, so the oracle
  alternates (1) a dynamic programme over (interval, loaded variant) with the
  clock trajectory held fixed, using the simulator's vectorised interval table,
  and (2) an exact simulation of the resulting plan, which gives the clock
  trajectory for the next round. Every plan is scored by exact simulation and
  the best is played, together with the exact one-step planner's and every
  static plan as candidates.
* :class:`ContextOraclePolicy` — the same planner, clairvoyant about the trace and
  the app's modes but not about the latency noise: it plans for several fresh noise
  draws of the same distribution at once (sample-average approximation) and plays
  that plan open loop. The noise is independent across intervals, so no controller
  that only sees the past can know it; what separates this reference from the
  oracle is what no deployable controller can learn, and what separates a
  controller from this reference is foresight of the context.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adascale_rl.environment.actions import action_for
from adascale_rl.policies.base import BasePolicy


def _reward(env, out) -> float:
    return env.reward.total(out.accuracy, out.serving.on_time_frac, out.energy_j, out.mem_mb, out.switched, out.oom)


def simulate_plan(env, targets: list[int], noise: list | None = None) -> tuple[float, list]:
    """Play a sequence of target variants through the true simulator from the episode's start state
    (with the episode's noise, or with ``noise``)."""
    ep = env.episode
    noise = ep.noise if noise is None else noise
    state = ep.state0
    total, outs = 0.0, []
    for t, target in enumerate(targets):
        state, out = env.physics.step(state, target, ep.exo[t], noise[t], env.period_s)
        total += _reward(env, out)
        outs.append(out)
    return total, outs


class ExactOneStepPolicy(BasePolicy):
    name = "exact-one-step"
    kind = "reference"
    PARAM_GRID: dict[str, list] = {}

    def act(self, obs, info) -> int:
        env = self.env
        t = env.t
        exo, noise = env.episode.exo[t], env.episode.noise[t]
        state = env.sim_state
        best, best_r = state.loaded, -np.inf
        for target in range(len(env.catalog)):
            _, out = env.physics.step(state, target, exo, noise, env.period_s)
            r = _reward(env, out)
            if r > best_r + 1e-12:
                best, best_r = target, r
        return action_for(best, state.loaded)

    def plan(self, env, noise: list | None = None) -> list[int]:
        """The targets this policy would pick over the whole episode (by simulation, with the
        episode's noise or with ``noise``)."""
        ep = env.episode
        noise = ep.noise if noise is None else noise
        state = ep.state0
        targets = []
        for t in range(len(ep.exo)):
            best, best_r, best_s = state.loaded, -np.inf, None
            for target in range(len(env.catalog)):
                s2, out = env.physics.step(state, target, ep.exo[t], noise[t], env.period_s)
                r = _reward(env, out)
                if r > best_r + 1e-12:
                    best, best_r, best_s = target, r, s2
            targets.append(best)
            state = best_s
        return targets


class OraclePolicy(BasePolicy):
    name = "oracle"
    kind = "reference"
    PARAM_GRID: dict[str, list] = {}

    def __init__(self, rounds: int = 4):
        self.rounds = rounds

    def noises(self, env) -> list[list]:
        """The noise sequences to plan for: the episode's own (clairvoyant)."""
        return [env.episode.noise]

    def _dp(self, env, freqs: list[float], noises: list[list]) -> list[int]:
        """Best plan for the mean reward over ``noises`` with the clock trajectory held at ``freqs``."""
        ep = env.episode
        n = len(env.catalog)
        acc = np.array([v.accuracy for v in env.catalog.variants])
        steps = len(ep.exo)
        # states: (loaded variant, killed by an OOM last interval) -> index loaded + n * killed
        value = np.zeros(2 * n)
        choice = np.zeros((steps, 2 * n), dtype=np.int64)
        for t in range(steps - 1, -1, -1):
            q_all = []
            for killed in (False, True):
                r = 0.0
                for noise in noises:  # memory, and so the OOM transitions, do not depend on the noise
                    tab = env.physics.interval_table(freqs[t], ep.exo[t], noise[t], env.period_s, killed)
                    # after a kill, running the same variant again is a restart, not a switch
                    switched = tab["switched"]
                    r = r + env.reward.total(acc[None, :], tab["on_time_frac"], tab["energy_j"], tab["mem_mb"],
                                             switched, tab["oom"])
                r = r / len(noises)
                nxt = np.arange(n)[None, :] + n * tab["oom"].astype(np.int64)
                q_all.append(r + value[nxt])
            q = np.concatenate(q_all, axis=0)
            choice[t] = np.argmax(q, axis=1)
            value = q[np.arange(2 * n), choice[t]]
        targets, state = [], ep.state0.loaded + n * int(ep.state0.killed)
        for t in range(steps):
            target = int(choice[t, state])
            targets.append(target)
            killed = self._oom_in_plan(env, t, state, target, freqs[t], noises[0])
            state = target + n * int(killed)
        return targets

    @staticmethod
    def _oom_in_plan(env, t: int, state: int, target: int, freq: float, noise: list) -> bool:
        n = len(env.catalog)
        ep = env.episode
        tab = env.physics.interval_table(freq, ep.exo[t], noise[t], env.period_s, state >= n)
        return bool(tab["oom"][state % n, target])

    @staticmethod
    def _score(env, plan: list[int], noises: list[list]) -> tuple[float, list]:
        """Mean simulated return of ``plan`` over ``noises``, and the outcomes under the first."""
        runs = [simulate_plan(env, plan, noise) for noise in noises]
        return float(np.mean([r for r, _ in runs])), runs[0][1]

    def plan(self, env) -> list[int]:
        ep = env.episode
        steps = len(ep.exo)
        n = len(env.catalog)
        noises = self.noises(env)
        candidates = [[v] * steps for v in range(n)]
        candidates.append(ExactOneStepPolicy().plan(env, noises[0]))
        scored = [(self._score(env, c, noises), c) for c in candidates]
        (best_r, best_outs), best = max(scored, key=lambda x: x[0][0])
        # start the DP from the clock trajectory of the best simple plan, then iterate
        freqs = [o.freq_mhz for o in best_outs]
        for _ in range(self.rounds):
            plan = self._dp(env, freqs, noises)
            r, outs = self._score(env, plan, noises)
            if r > best_r:
                best_r, best = r, plan
            new_freqs = [o.freq_mhz for o in outs]
            if new_freqs == freqs:
                break
            freqs = new_freqs
        self.planned_return = best_r
        return best

    def reset(self, env: Any) -> None:
        super().reset(env)
        self.targets = self.plan(env)

    def act(self, obs, info) -> int:
        return action_for(self.targets[self.env.t], self.env.sim_state.loaded)


class ContextOraclePolicy(OraclePolicy):
    """Clairvoyant about the trace and the app's modes, not about the latency noise.

    Plans with :class:`OraclePolicy`'s method for the mean return over ``samples``
    noise sequences drawn afresh from the environment's noise model (seeded from the
    episode's trace index, start and length only: the same samples for every evaluation
    seed, never the episode's own draws), then plays the plan open loop.
    """

    name = "context-oracle"

    def __init__(self, rounds: int = 4, samples: int = 4):
        super().__init__(rounds)
        if samples < 1:
            raise ValueError(f"samples must be >= 1, not {samples!r}")
        self.samples = samples

    def noises(self, env) -> list[list]:
        ep = env.episode
        rng = np.random.default_rng([int(ep.trace), int(ep.start), len(ep.exo), 0xC0DE])
        return [env.draw_noise(rng, len(ep.exo)) for _ in range(self.samples)]


REFERENCES = {"exact-one-step": ExactOneStepPolicy, "oracle": OraclePolicy, "context-oracle": ContextOraclePolicy}
