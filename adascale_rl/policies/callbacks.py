"""SB3 callbacks of the PPO recipe, usable from ``adascale-rl train`` and from rl-zoo3.

Both are named in ``agents/hyperparams/ppo.yml`` (``callback:``), which rl-zoo3
reads with ``--conf-file``::

    callback:
      - adascale_rl.policies.callbacks.KeepBias: {keep_prob: 0.9}
      - adascale_rl.policies.callbacks.RolloutInfoLogger
"""

from __future__ import annotations

import math

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

#: ``info`` keys averaged per rollout and logged as ``env/<key>`` (reward terms, then measured quantities)
INFO_KEYS = ("reward_accuracy", "reward_miss", "reward_energy", "reward_mem", "reward_switch", "reward_oom",
             "effective_accuracy", "miss_rate", "latency_ms", "energy_mj", "switched", "oom")


def keep_logit(keep_prob: float, n_actions: int) -> float:
    """The logit offset that makes keep ``keep_prob`` likely when all other logits are equal."""
    if not 0.0 < keep_prob < 1.0:
        raise ValueError(f"keep_prob must be strictly between 0 and 1, not {keep_prob!r}")
    if n_actions < 2:
        return 0.0
    return math.log(keep_prob * (n_actions - 1) / (1.0 - keep_prob))


def apply_keep_bias(policy, keep_prob: float) -> float:
    """Add the keep offset to the bias of action 0 in the policy's action head; returns it.

    At initialisation SB3's action head has weights of scale 0.01 and zero bias,
    so every logit is about 0 and keep gets ``keep_prob`` of the probability
    mass (more when actions are masked). Switching costs real time and memory,
    so exploration that starts from keeping learns faster than one that
    switches at almost every step.
    """
    import torch as th

    head = policy.action_net
    offset = keep_logit(keep_prob, head.out_features)
    with th.no_grad():
        head.bias[0] += offset
    return offset


class KeepBias(BaseCallback):
    """Start exploration from a policy that mostly keeps the loaded variant (action 0).

    Applied once, when a fresh model starts training (no gradient update yet);
    a resumed or loaded model is left alone.
    """

    def __init__(self, keep_prob: float = 0.9, verbose: int = 0):
        super().__init__(verbose)
        keep_logit(keep_prob, 2)  # validate now, not when training starts
        self.keep_prob = float(keep_prob)
        self.offset: float | None = None

    def _on_training_start(self) -> None:
        if getattr(self.model, "_n_updates", 0) == 0 and self.model.num_timesteps == 0:
            self.offset = apply_keep_bias(self.model.policy, self.keep_prob)
            if self.verbose:
                print(f"keep bias: +{self.offset:.3f} on the keep logit (initial P(keep) = {self.keep_prob:g})")

    def _on_step(self) -> bool:
        return True


def actor_parameters(policy) -> list:
    """The parameters only the action distribution depends on: the policy branch and the action head."""
    return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]


class CriticWarmup(BaseCallback):
    """Train only the value function for the first ``steps`` environment steps.

    A fresh critic's advantages are noise; a policy that already starts good (a
    prior such as :class:`adascale_rl.policies.prior.PlannerPrior`) is pushed
    away from it by that noise before the critic can tell better from worse. So
    the actor's parameters (:func:`actor_parameters`) get no gradient until
    ``steps`` steps have been collected; the critic learns the prior's values
    meanwhile. Decided before every update (frozen while fewer than ``steps`` steps have
    been collected), so a resumed run continues correctly. Only the policy branch and the
    action head are frozen: a features extractor with trainable weights shared with the
    critic would still move the action distribution (:class:`PlannerPrior` has none).
    """

    def __init__(self, steps: int = 20_000, verbose: int = 0):
        super().__init__(verbose)
        if int(steps) < 0:
            raise ValueError(f"CriticWarmup steps must be >= 0, not {steps!r}")
        self.steps = int(steps)
        self.frozen: bool | None = None

    def _on_rollout_end(self) -> None:
        frozen = self.model.num_timesteps < self.steps
        if frozen != self.frozen:
            for prm in actor_parameters(self.model.policy):
                prm.requires_grad_(not frozen)
            if self.verbose:
                print(f"critic warm-up: actor {'frozen' if frozen else 'trained'} from {self.model.num_timesteps} steps")
            self.frozen = frozen

    def _on_training_end(self) -> None:
        for prm in actor_parameters(self.model.policy):
            prm.requires_grad_(True)
        self.frozen = None

    def _on_step(self) -> bool:
        return True


class RolloutInfoLogger(BaseCallback):
    """Average the reward terms and measured quantities from ``info`` over each rollout.

    Logged as ``env/<key>`` (TensorBoard, and the console logger when verbose),
    so a learning curve shows *why* the return moves: fewer misses, less energy,
    fewer switches.
    """

    def __init__(self, keys: tuple[str, ...] = INFO_KEYS, verbose: int = 0):
        super().__init__(verbose)
        self.keys = tuple(keys)
        self._sum = np.zeros(len(self.keys))
        self._n = np.zeros(len(self.keys))

    def _on_rollout_start(self) -> None:
        self._sum[:] = 0.0
        self._n[:] = 0.0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            for j, k in enumerate(self.keys):
                v = info.get(k)
                if v is not None:
                    self._sum[j] += float(v)
                    self._n[j] += 1
        return True

    def _on_rollout_end(self) -> None:
        for j, k in enumerate(self.keys):
            if self._n[j]:
                self.logger.record(f"env/{k}", self._sum[j] / self._n[j])
