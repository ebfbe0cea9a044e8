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

    def predicted_ms(self, obs: th.Tensor) -> th.Tensor:
        clock = obs[:, _IDX["clock_frac"]].clamp(min=0.05).unsqueeze(1)
        bg = obs[:, _IDX["bg_cpu_util"]].unsqueeze(1)
        eff = (self.cores * (1.0 - 0.5 * bg)).clamp(min=0.5)
        s_all = 1.0 / ((1.0 - self.pf) + self.pf / self.cores)
        s_eff = 1.0 / ((1.0 - self.pf) + self.pf / eff)
        return self.lat * (self.cb / clock + (1.0 - self.cb)) * s_all / s_eff

    def budget_ms(self, obs: th.Tensor) -> th.Tensor:
        deadline = self.ref_ms * th.pow(2.0, 4.0 * obs[:, _IDX["deadline_log"]])
        interval = self.ref_ms * th.pow(2.0, -4.0 * obs[:, _IDX["load_log"]])  # 1000 / rate, in ms
        return th.minimum(deadline, interval).unsqueeze(1)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        slack = (th.log2(self.budget_ms(obs) / self.predicted_ms(obs)) / 4.0).clamp(-1.0, 1.0)
        return th.cat([obs, slack], dim=1)
