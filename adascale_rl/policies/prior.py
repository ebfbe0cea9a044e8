"""The learned controller's prior: the reward-aware planner inside the policy network.

:class:`PlannerPrior` is a features extractor for sb3-contrib's MaskablePPO. From the
observation alone (decoded with :func:`adascale_rl.environment.observation.decode_planning`)
and constants saved with the model (the catalog on the device, as
:class:`adascale_rl.device.model.VariantTable`; the reward; the observation's scales) it
computes, in torch, what the planner heuristic computes in numpy -- the same functions,
:mod:`adascale_rl.policies.planning` over :mod:`adascale_rl.device.model` -- and leaves the
planner's action values divided by ``temperature`` in :attr:`PlannerPrior.last_prior`;
:class:`PriorMaskablePolicy` adds them to the network's logits. At initialisation the
network's logits are near zero, so the policy starts as a soft planner and PPO learns the
residual (residual policy learning: Silver et al. 2018, arXiv 1812.06298; Johannink et al.
2019, arXiv 1812.03201). Where the planner runs a Kalman filter on the slow-down it
observes, the prior uses the observation's running average of it (``slowdown_ema_log``).

:class:`VariantSlack`, the features the network sees besides the observation: for each
variant, log2(latency budget / the model's predicted mean response time) / 4, clipped to
[-1, 1] -- the quantity the greedy heuristics threshold on.

Because everything is computed from the observation and saved constants, the exported
controller (``adascale-rl export``) carries the prior with it, in ONNX and in numpy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from adascale_rl.device import model
from adascale_rl.device.model import VariantTable
from adascale_rl.environment.observation import decode_planning
from adascale_rl.environment.reward import Reward
from adascale_rl.policies import planning


class VariantSlack(BaseFeaturesExtractor):
    """Observation + one slack feature per variant: log2(budget / predicted latency) / 4, clipped to [-1, 1]."""

    def __init__(self, observation_space: gym.spaces.Box, table: dict, encoder: dict):
        self.table = VariantTable.from_dict(table)
        n_obs = int(observation_space.shape[0])
        super().__init__(observation_space, features_dim=n_obs + self.table.n)
        for k, v in self.table.arrays().items():
            self.register_buffer(k, th.tensor(v, dtype=th.float32))
        self.encoder = dict(encoder)

    def tensors(self) -> dict[str, th.Tensor]:
        return {k: getattr(self, k) for k in VariantTable.ARRAYS}

    @classmethod
    def kwargs_for(cls, env: Any) -> dict:
        """The constants this extractor needs, from an (unwrapped) AdaScaleEnv: plain numbers, saved with the model."""
        return {"table": env.app_physics.table.to_dict(), "encoder": env.encoder.constants()}

    def decode(self, obs: th.Tensor) -> dict:
        return decode_planning(obs, **self.encoder)

    def predicted_ms(self, ctx: dict) -> th.Tensor:
        return model.expected_latency_ms(self.table, self.tensors(), freq_mhz=ctx["freq_mhz"],
                                         bg_runnable=ctx["bg_runnable"], rate_hz=ctx["rate_hz"],
                                         deadline_ms=ctx["deadline_ms"])

    @staticmethod
    def budget_ms(ctx: dict) -> th.Tensor:
        return th.minimum(ctx["deadline_ms"], 1000.0 / ctx["rate_hz"])

    def slack(self, obs: th.Tensor, ctx: dict) -> th.Tensor:
        return th.cat([obs, planning.slack(self.table, self.tensors(), ctx)], dim=1)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.slack(obs, self.decode(obs))


class PlannerPrior(VariantSlack):
    """:class:`VariantSlack` features plus the reward-aware planner's action values as prior logits."""

    def __init__(self, observation_space: gym.spaces.Box, table: dict, encoder: dict, reward: dict,
                 period_s: float, sigma: float = 0.2, horizon: float = 8.0, temperature: float = 0.01):
        super().__init__(observation_space, table, encoder)
        weights = {k: v for k, v in reward.items() if k not in ("energy_budget_j", "mem_total_mb")}
        self.reward = Reward(**weights).scaled(reward["energy_budget_j"], reward["mem_total_mb"])
        self.dt = float(period_s)
        self.sigma = float(sigma)
        self.horizon = float(horizon)
        self.temperature = float(temperature)
        self.last_prior: th.Tensor | None = None

    #: the planner's margins the prior shares; :meth:`tuned_kwargs` picks them on the train split
    TUNED = ("horizon", "sigma")

    @classmethod
    def tuned_kwargs(cls, train_env: Any, max_episodes: int = 8) -> dict:
        """``horizon`` and ``sigma`` tuned on ``train_env`` as ``bench`` tunes the planner heuristic.

        The grid is :attr:`PlannerPolicy.PARAM_GRID <adascale_rl.policies.heuristics.PlannerPolicy.PARAM_GRID>`
        for these two keys (its Kalman ``q`` has no counterpart here and stays at its default), searched by
        :func:`adascale_rl.policies.rollout.tune` on the same train windows, so the
        prior starts from the margins the tuned baseline uses rather than fixed
        defaults. A few seconds per environment.
        """
        from adascale_rl.policies.heuristics import PlannerPolicy
        from adascale_rl.policies.rollout import tune

        grid = {k: PlannerPolicy.PARAM_GRID[k] for k in cls.TUNED}
        params, _ = tune(train_env, lambda **kw: PlannerPolicy(**kw), grid, max_episodes=max_episodes)
        return {k: float(v) for k, v in params.items()}

    @classmethod
    def kwargs_for(cls, env: Any) -> dict:
        kw = VariantSlack.kwargs_for(env)
        r = env.reward
        kw.update(reward={**{k: v for k, v in r.weights.to_dict().items()}, "energy_budget_j": r.energy_budget_j,
                          "mem_total_mb": r.mem_total_mb}, period_s=float(env.period_s))
        return kw

    def prior_logits(self, ctx: dict) -> th.Tensor:
        keep, switch = planning.predicted_rewards(self.table, self.tensors(), self.reward, ctx, self.sigma, self.dt)
        return planning.action_values(keep, switch, ctx["loaded"], ctx["killed"], self.horizon) / self.temperature

    def forward(self, obs: th.Tensor) -> th.Tensor:
        ctx = self.decode(obs)
        self.last_prior = self.prior_logits(ctx)
        return self.slack(obs, ctx)


class PriorMaskablePolicy(MaskableActorCriticPolicy):
    """Maskable actor-critic whose action logits are the network's plus the extractor's prior logits."""

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor):
        logits = self.action_net(latent_pi)
        prior = getattr(self.pi_features_extractor, "last_prior", None)
        if prior is not None and prior.shape == logits.shape:
            logits = logits + prior
        return self.action_dist.proba_distribution(action_logits=logits)
