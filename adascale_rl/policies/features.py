"""Policy-side features for learned controllers: the profiler's view of every variant.

:class:`VariantSlack` appends to the observation, for each catalog variant, the
log-ratio of the latency budget (``min(deadline, 1/rate)``) to the latency the
profiler model predicts for that variant under the measured clock and
background load — the quantity the greedy heuristics threshold on. It is
computed inside the policy network from the observation itself and from catalog
constants stored in the network, so it costs the environment nothing, it is
saved with the model, and an exported policy carries it. It reads only what a
device knows (the encoded observation and the catalog).

The latency model is :func:`adascale_rl.device.physics.median_latency_ms` with
unit noise; ``tests/policies/test_features.py`` checks the two agree.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from adascale_rl.environment.observation import FEATURES

_IDX = {f.name: i for i, f in enumerate(FEATURES)}


class VariantSlack(BaseFeaturesExtractor):
    """Observation + one profiler slack feature per variant: log2(budget / predicted latency) / 4, clipped to [-1, 1]."""

    def __init__(self, observation_space: gym.spaces.Box, latency_ms: Sequence[float],
                 compute_bound_frac: Sequence[float], parallel_frac: Sequence[float], cores: float, ref_ms: float):
        n_obs = int(observation_space.shape[0])
        super().__init__(observation_space, features_dim=n_obs + len(latency_ms))
        self.register_buffer("lat", th.tensor(latency_ms, dtype=th.float32))
        self.register_buffer("cb", th.tensor(compute_bound_frac, dtype=th.float32))
        self.register_buffer("pf", th.tensor(parallel_frac, dtype=th.float32))
        self.cores = float(cores)
        self.ref_ms = float(ref_ms)

    @classmethod
    def kwargs_for(cls, env: Any) -> dict:
        """The constants this extractor needs, from an (unwrapped) AdaScaleEnv: plain numbers, saved with the model."""
        cat, dev = env.catalog, env.device
        return {
            "latency_ms": [v.latency_ms for v in cat.variants],
            "compute_bound_frac": [v.compute_bound_frac for v in cat.variants],
            "parallel_frac": [v.parallel_frac for v in cat.variants],
            "cores": float(dev.cores),
            "ref_ms": float(env.encoder.reference_latency_ms),
        }

    def speedups(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """(clock as a share of the top clock, Amdahl speed-up on all cores, on the cores the
        background leaves), each (B, 1) or (B, n)."""
        clock = obs[:, _IDX["clock_frac"]].clamp(min=0.05).unsqueeze(1)
        bg = obs[:, _IDX["bg_cpu_util"]].unsqueeze(1)
        eff = (self.cores * (1.0 - 0.5 * bg)).clamp(min=0.5)
        s_all = 1.0 / ((1.0 - self.pf) + self.pf / self.cores)
        s_eff = 1.0 / ((1.0 - self.pf) + self.pf / eff)
        return clock, s_all, s_eff

    def predicted_ms(self, obs: th.Tensor, speedups: tuple | None = None) -> th.Tensor:
        clock, s_all, s_eff = self.speedups(obs) if speedups is None else speedups
        return self.lat * (self.cb / clock + (1.0 - self.cb)) * s_all / s_eff

    def budget_ms(self, obs: th.Tensor) -> th.Tensor:
        deadline = self.ref_ms * th.pow(2.0, 4.0 * obs[:, _IDX["deadline_log"]])
        interval = self.ref_ms * th.pow(2.0, -4.0 * obs[:, _IDX["load_log"]])  # 1000 / rate, in ms
        return th.minimum(deadline, interval).unsqueeze(1)

    def slack(self, obs: th.Tensor, predicted_ms: th.Tensor) -> th.Tensor:
        return th.cat([obs, (th.log2(self.budget_ms(obs) / predicted_ms) / 4.0).clamp(-1.0, 1.0)], dim=1)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.slack(obs, self.predicted_ms(obs))


class PlannerPrior(VariantSlack):
    """:class:`VariantSlack` features plus the reward-aware planner's scores as prior action logits.

    For every action it predicts the coming interval's reward the way
    :class:`adascale_rl.policies.heuristics.PlannerPolicy` does (profiler latency
    model, log-normal serving, profiled energy, memory, the app's reward weights;
    a switch's cost amortised over ``horizon`` intervals), divides by
    ``temperature`` and leaves the result in :attr:`last_prior` for
    :class:`PriorMaskablePolicy`, which adds it to the network's logits. At
    initialisation the network's own logits are near zero, so the policy starts as
    a soft version of the planner and PPO learns the residual (residual policy
    learning: Silver et al. 2018, arXiv 1812.06298; Johannink et al. 2019,
    arXiv 1812.03201). Where the planner runs a Kalman filter on the slow-down it
    observes, the prior uses the observation's running average of it
    (``slowdown_ema_log``).
    """

    def __init__(self, observation_space: gym.spaces.Box, latency_ms, compute_bound_frac, parallel_frac, cores,
                 ref_ms, accuracy: Sequence[float], peak_mem_mb: Sequence[float], energy_mj: Sequence[float],
                 load_ms: Sequence[float], freq_exponent: float, dyn_w_max: float, mem_total_mb: float,
                 period_s: float, runtime_overhead_mb: float, weights: Sequence[float], sigma: float = 0.2,
                 horizon: float = 8.0, temperature: float = 0.01):
        super().__init__(observation_space, latency_ms, compute_bound_frac, parallel_frac, cores, ref_ms)
        for name, values in (("acc", accuracy), ("peak", peak_mem_mb), ("energy", energy_mj), ("load", load_ms)):
            self.register_buffer(name, th.tensor(values, dtype=th.float32))
        self.k = float(freq_exponent)
        self.dyn_w_max = float(dyn_w_max)
        self.mem_total = float(mem_total_mb)
        self.dt = float(period_s)
        self.overhead = float(runtime_overhead_mb)
        self.w_acc, self.w_miss, self.w_energy, self.w_mem, self.w_switch = (float(w) for w in weights)
        self.sigma = float(sigma)
        self.horizon = float(horizon)
        self.temperature = float(temperature)
        # mean / median of the log-normal frame latency (computed in float32, as it always was)
        self.mean_factor = float(th.exp(th.tensor(0.5 * self.sigma ** 2)))
        self.n_variants = len(latency_ms)
        self.last_prior: th.Tensor | None = None

    #: the planner's margins the prior shares; :meth:`tuned_kwargs` picks them on the train split
    TUNED = ("horizon", "sigma")

    @classmethod
    def tuned_kwargs(cls, train_env: Any, max_episodes: int = 8) -> dict:
        """``horizon`` and ``sigma`` tuned on ``train_env`` as ``bench`` tunes the planner heuristic.

        The grid is :attr:`PlannerPolicy.PARAM_GRID <adascale_rl.policies.heuristics.PlannerPolicy.PARAM_GRID>`
        for these two keys (its Kalman ``q`` has no counterpart here and stays at its default), searched by
        :func:`adascale_rl.evaluation.core.tune` on the same train windows, so the
        prior starts from the margins the tuned baseline uses rather than fixed
        defaults. A few seconds per environment.
        """
        from adascale_rl.evaluation.core import tune
        from adascale_rl.policies.heuristics import PlannerPolicy

        grid = {k: PlannerPolicy.PARAM_GRID[k] for k in cls.TUNED}
        params, _ = tune(train_env, lambda **kw: PlannerPolicy(**kw), grid, max_episodes=max_episodes)
        return {k: float(v) for k, v in params.items()}

    @classmethod
    def kwargs_for(cls, env: Any) -> dict:
        from adascale_rl.device.physics import switch_load_ms

        cat, dev, w = env.catalog, env.device, env.reward_fn
        kw = VariantSlack.kwargs_for(env)
        kw.update(accuracy=[v.accuracy for v in cat.variants], peak_mem_mb=[v.peak_mem_mb for v in cat.variants],
                  energy_mj=[v.energy_mj for v in cat.variants],
                  load_ms=[switch_load_ms(v, dev) for v in cat.variants], freq_exponent=dev.freq_exponent,
                  dyn_w_max=dev.dyn_w_max, mem_total_mb=dev.mem_total_mb, period_s=env.period_s,
                  runtime_overhead_mb=cat.runtime_overhead_mb,
                  weights=[w.w_accuracy, w.w_miss, w.w_energy, w.w_mem, w.w_switch])
        return kw

    def predicted_rewards(self, obs: th.Tensor, predicted_ms: th.Tensor | None = None,
                          speedups: tuple | None = None) -> tuple[th.Tensor, th.Tensor]:
        """(reward if the variant keeps running, reward of the interval that switches to it), each (B, n)."""
        n = self.n_variants
        clock, s_all, s_eff = self.speedups(obs) if speedups is None else speedups
        if predicted_ms is None:
            predicted_ms = self.predicted_ms(obs, (clock, s_all, s_eff))
        # the profiler's prediction, corrected by the app's running slow-down estimate
        median = predicted_ms * th.pow(2.0, 2.0 * obs[:, _IDX["slowdown_ema_log"]]).unsqueeze(1)
        deadline = self.ref_ms * th.pow(2.0, 4.0 * obs[:, _IDX["deadline_log"]]).unsqueeze(1)
        rate = (1000.0 / self.ref_ms) * th.pow(2.0, 4.0 * obs[:, _IDX["load_log"]]).unsqueeze(1)
        loaded = obs[:, -n:]
        mean = median * self.mean_factor
        within = 0.5 * (1.0 + th.erf((th.log(deadline) - th.log(median)) / (self.sigma * 2.0 ** 0.5)))
        issued = rate * self.dt
        open_sw = (self.dt - self.load / 1000.0).clamp(min=0.0)
        served = th.minimum(issued, self.dt * 1000.0 / mean)
        served_sw = th.minimum(rate * open_sw, open_sw * 1000.0 / mean)
        used = s_eff / s_all
        fk = th.pow(clock, self.k)
        p_inf = self.energy / self.lat * fk * used
        budget_j = self.dyn_w_max * self.dt
        load_j = self.dyn_w_max * fk / self.cores * (self.load / 1000.0).clamp(max=self.dt)

        def reward(served_n, energy_j, mem_mb, switched):
            on = served_n / issued.clamp(min=1e-9) * within
            return (self.w_acc * self.acc * on - self.w_miss * (1.0 - on) - self.w_energy * energy_j / budget_j
                    - self.w_mem * mem_mb / self.mem_total - self.w_switch * switched)

        # after an OOM kill (last_oom) nothing is resident: every choice loads, alone
        killed = (obs[:, _IDX["last_oom"]] > 0.5).unsqueeze(1)
        energy_sw = p_inf * served_sw * mean / 1000.0 + load_j
        keep = th.where(killed, reward(served_sw, energy_sw, self.peak.expand_as(median), 0.0),
                        reward(served, p_inf * served * mean / 1000.0, self.peak.expand_as(median), 0.0))
        peak_loaded = (loaded * self.peak).sum(dim=1, keepdim=True)
        switch = reward(served_sw, energy_sw, th.where(killed, self.peak, self.peak + peak_loaded - self.overhead), 1.0)
        return keep, switch

    def prior_logits(self, obs: th.Tensor, predicted_ms: th.Tensor | None = None,
                     speedups: tuple | None = None) -> th.Tensor:
        n = self.n_variants
        keep, switch = self.predicted_rewards(obs, predicted_ms, speedups)
        loaded = obs[:, -n:]
        killed = (obs[:, _IDX["last_oom"]] > 0.5).unsqueeze(1)
        amortised = th.where(killed, switch, (switch + (self.horizon - 1.0) * keep) / self.horizon)
        value = loaded * keep + (1.0 - loaded) * amortised
        keep_value = (loaded * keep).sum(dim=1, keepdim=True)
        return th.cat([keep_value, value], dim=1) / self.temperature

    def forward(self, obs: th.Tensor) -> th.Tensor:
        speedups = self.speedups(obs)
        predicted = self.predicted_ms(obs, speedups)  # once, for the prior and the slack features
        self.last_prior = self.prior_logits(obs, predicted, speedups)
        return self.slack(obs, predicted)


class PriorMaskablePolicy(MaskableActorCriticPolicy):
    """Maskable actor-critic whose action logits are the network's plus the extractor's prior logits."""

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor):
        logits = self.action_net(latent_pi)
        prior = getattr(self.pi_features_extractor, "last_prior", None)
        if prior is not None and prior.shape == logits.shape:
            logits = logits + prior
        return self.action_dist.proba_distribution(action_logits=logits)
