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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adascale_rl.policies.base import BasePolicy

KEEP = 0


def _reward(env, out) -> float:
    d = env.device
    terms = env.reward_fn.terms(out.accuracy, out.serving.on_time_frac, out.energy_j / (d.dyn_w_max * env.period_s),
                                out.mem_mb / d.mem_total_mb, out.switched, out.oom)
    return sum(terms)


def simulate_plan(env, targets: list[int]) -> tuple[float, list]:
    """Play a sequence of target variants through the true simulator from the episode's start state."""
    ep = env.episode
    state = ep["state0"]
    total, outs = 0.0, []
    for t, target in enumerate(targets):
        state, out = env.physics.step(state, target, ep["exo"][t], ep["noise"][t], env.period_s)
        total += _reward(env, out)
        outs.append(out)
    return total, outs


class ExactOneStepPolicy(BasePolicy):
    name = "exact-one-step"
    kind = "reference"
    PARAM_GRID: dict[str, list] = {}

    def act(self, obs, info) -> int:
        env = self.env
        t = env._t
        exo, noise = env.episode["exo"][t], env.episode["noise"][t]
        best, best_r = KEEP, -np.inf
        for target in range(len(env.catalog)):
            _, out = env.physics.step(env.state, target, exo, noise, env.period_s)
            r = _reward(env, out)
            if r > best_r + 1e-12:
                best, best_r = target, r
        return KEEP if best == env.state.loaded else best + 1

    def plan(self, env) -> list[int]:
        """The targets this policy would pick over the whole episode (by simulation)."""
        ep = env.episode
        state = ep["state0"]
        targets = []
        for t in range(len(ep["exo"])):
            best, best_r, best_s = state.loaded, -np.inf, None
            for target in range(len(env.catalog)):
                s2, out = env.physics.step(state, target, ep["exo"][t], ep["noise"][t], env.period_s)
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

    def _dp(self, env, freqs: list[float]) -> list[int]:
        ep = env.episode
        n = len(env.catalog)
        w = env.reward_fn
        d = env.device
        acc = np.array([v.accuracy for v in env.catalog.variants])
        steps = len(ep["exo"])
        # states: (loaded variant, killed by an OOM last interval) -> index loaded + n * killed
        value = np.zeros(2 * n)
        choice = np.zeros((steps, 2 * n), dtype=np.int64)
        budget = d.dyn_w_max * env.period_s
        for t in range(steps - 1, -1, -1):
            q_all = []
            for killed in (False, True):
                tab = env.physics.interval_table(freqs[t], ep["exo"][t], ep["noise"][t], env.period_s, killed)
                on = tab["on_time_frac"]
                r = (w.w_accuracy * acc[None, :] * on - w.w_miss * (1.0 - on) - w.w_energy * tab["energy_j"] / budget
                     - w.w_mem * tab["mem_mb"] / d.mem_total_mb - w.w_switch * tab["switched"] - w.w_oom * tab["oom"])
                nxt = np.arange(n)[None, :] + n * tab["oom"].astype(np.int64)
                q_all.append(r + value[nxt])
            q = np.concatenate(q_all, axis=0)
            choice[t] = np.argmax(q, axis=1)
            value = q[np.arange(2 * n), choice[t]]
        targets, state = [], ep["state0"].loaded + n * int(ep["state0"].killed)
        for t in range(steps):
            target = int(choice[t, state])
            targets.append(target)
            killed = self._oom_in_plan(env, t, state, target, freqs[t])
            state = target + n * int(killed)
        return targets

    @staticmethod
    def _oom_in_plan(env, t: int, state: int, target: int, freq: float) -> bool:
        n = len(env.catalog)
        ep = env.episode
        tab = env.physics.interval_table(freq, ep["exo"][t], ep["noise"][t], env.period_s, state >= n)
        return bool(tab["oom"][state % n, target])

    def plan(self, env) -> list[int]:
        ep = env.episode
        steps = len(ep["exo"])
        n = len(env.catalog)
        candidates = [[v] * steps for v in range(n)]
        candidates.append(ExactOneStepPolicy().plan(env))
        scored = [(simulate_plan(env, c), c) for c in candidates]
        (best_r, best_outs), best = max(scored, key=lambda x: x[0][0])
        # start the DP from the clock trajectory of the best simple plan, then iterate
        freqs = [o.freq_mhz for o in best_outs]
        for _ in range(self.rounds):
            plan = self._dp(env, freqs)
            r, outs = simulate_plan(env, plan)
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
        target = self.targets[self.env._t]
        return KEEP if target == self.env.state.loaded else target + 1


REFERENCES = {"exact-one-step": ExactOneStepPolicy, "oracle": OraclePolicy}
