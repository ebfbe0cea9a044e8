"""The native vector environment as a Stable-Baselines3 ``VecEnv``, for ``adascale-rl train``.

SB3 has its own vector API: ``reset()`` returns the observations only (seeds and options
are set beforehand with ``seed()`` and ``set_options()``), ``step_wait()`` returns
``(obs, rewards, dones, infos)`` with a list of one ``info`` dict per environment, and an
episode that ends resets at once, its last observation in ``info["terminal_observation"]``
and ``info["TimeLimit.truncated"]`` saying it was cut by the time limit. sb3-contrib's
MaskablePPO reads the masks with ``env_method("action_masks")``.

:class:`SB3VectorEnv` gives exactly that over an
:class:`~adascale_rl.environment.vector.AdaScaleVectorEnv` in same-step autoreset mode, so
``MaskablePPO`` collects from the vector environment what it collects from a
``DummyVecEnv`` of single environments seeded alike (``DummyVecEnv`` turns rewards into
float32; so does this). Episode statistics (``info["episode"]``) come from SB3's
``VecMonitor`` around it, as ``Monitor`` gives them around single environments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from adascale_rl.environment.vector import AdaScaleVectorEnv


class SB3VectorEnv(VecEnv):
    """An :class:`AdaScaleVectorEnv` (same-step autoreset) behind SB3's ``VecEnv`` API."""

    def __init__(self, venv: AdaScaleVectorEnv):
        if venv.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ValueError("SB3VectorEnv needs the vector environment in same-step autoreset mode "
                             "(AdaScaleVectorEnv(..., autoreset_mode='SameStep'))")
        self.venv = venv
        self.render_mode = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ reset and step
    def reset(self):
        options = None
        if any(self._options):
            keys = {k for o in self._options for k in o}
            if any(set(o) != keys for o in self._options):
                raise ValueError("set_options: give every environment the same option keys")
            options = {k: [o[k] for o in self._options] for k in keys}
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, info = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = _per_env(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos = _per_env(info, self.num_envs)
        if dones.any():
            final = _per_env(info["final_info"], self.num_envs)
            for i in np.flatnonzero(dones).tolist():
                self.reset_infos[i] = infos[i]                   # the new episode's reset info
                infos[i] = final[i]                              # the step's info, as a single environment gives it
                infos[i]["terminal_observation"] = info["final_obs"][i]
        for i, (te, tr) in enumerate(zip(terminated.tolist(), truncated.tolist())):
            infos[i]["TimeLimit.truncated"] = tr and not te
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    # ------------------------------------------------------------------ what SB3 and MaskablePPO call
    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        rows = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in rows]
        method = getattr(self.venv.base, method_name)  # a method of the shared single environment (data, spaces)
        return [method(*method_args, **method_kwargs) for _ in rows]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "action_masks":
            masks = self.venv.action_masks()
            return [(lambda m=masks[i]: m) for i in self._get_indices(indices)]
        if attr_name == "render_mode":
            return [None for _ in self._get_indices(indices)]
        value = getattr(self.venv.base, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"the sub-environments of a vector environment share their attributes; "
                             f"cannot set {attr_name!r} on some of them")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def _per_env(info: dict, n: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (dict of arrays with ``_key`` masks) as one plain dict per environment,
    with Python scalars (and a copy of each row of a 2-d array), in the vector info's key order."""
    keys = [k for k in info if not k.startswith("_") and k not in ("final_obs", "final_info")]
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for k in keys:
        values, present = info[k], info[f"_{k}"]
        rows = values if values.ndim > 1 else values.tolist()
        for i in np.flatnonzero(present).tolist():
            out[i][k] = rows[i].copy() if values.ndim > 1 else rows[i]
    return out

