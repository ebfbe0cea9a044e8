"""AdaScaleVectorEnv: N AdaScale environments stepped together over arrays (Gymnasium's ``vector_entry_point``).

::

    envs = gym.make_vec("AdaScale/Rpi4-Vision-v4", num_envs=1024, vectorization_mode="vector_entry_point")
    obs, info = envs.reset(seed=0)               # sub-environment i replays AdaScaleEnv.reset(seed=0 + i)
    obs, reward, terminated, truncated, info = envs.step(actions)
    envs.action_masks()                          # (num_envs, n_actions) bool; also info["action_mask"]

One transition, two shells. Everything an environment is made of -- arguments, data, the
device physics, the observation encoder, the reward, the reset draws -- is an
:class:`~adascale_rl.environment.env.AdaScaleEnv` (:attr:`AdaScaleVectorEnv.base`); this
shell holds the state of ``num_envs`` episodes in arrays and steps them at once with
:meth:`DevicePhysics.step_batch <adascale_rl.device.physics.DevicePhysics.step_batch>` (the
batched performance model), :meth:`ObservationEncoder.encode_batch
<adascale_rl.environment.observation.ObservationEncoder.encode_batch>` and the same
:class:`~adascale_rl.environment.reward.ScaledReward`. Each sub-environment keeps its own
random generator and resets with :meth:`AdaScaleEnv.draw_episode
<adascale_rl.environment.env.AdaScaleEnv.draw_episode>`, so it draws what a single environment
reset with the same seed draws, in the same order. ``tests/environment/test_vector.py`` checks
that on the same seeds and actions it gives what N single environments under
:class:`gymnasium.vector.SyncVectorEnv` give: observations, rewards, terminations,
truncations and ``info``, over whole episodes and their resets.

Autoreset (``autoreset_mode``, in ``metadata["autoreset_mode"]``): Gymnasium's default
``NEXT_STEP`` (the step after an episode ends resets that sub-environment, ignores its action
and returns its first observation with reward 0), ``SAME_STEP`` (the ending step resets at
once; the last observation and info are in ``info["final_obs"]`` and ``info["final_info"]``;
the Stable-Baselines3 adapter uses it) or ``DISABLED`` (reset ended sub-environments with
``reset(options={"reset_mask": ...})``).

``info`` is what Gymnasium's vector environments give: a dict of arrays over the
sub-environments, each key with a boolean ``_key`` array saying which sub-environments
have it (the step's keys, or the reset's ``trace``, ``start``, ``variant`` and
``action_mask``). Reset options (``trace``, ``start``, ``variant``) apply to every
sub-environment, or, given as a sequence of ``num_envs`` values, one each.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from adascale_rl.device import model
from adascale_rl.device.physics import Exo, Noise, PhysicsState
from adascale_rl.environment.actions import KEEP
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.observation import SLOWDOWN_EMA_WEIGHT

#: ``info`` keys of a step, in the single environment's order
STEP_KEYS = ("variant", "accuracy", "effective_accuracy", "latency_ms", "service_ms", "deadline_ms", "bg_runnable",
             "energy_mj", "power_w", "mem_mb", "miss_rate", "served_frac", "switched", "oom", "temp_c", "freq_mhz",
             "battery_pct", "reward_accuracy", "reward_miss", "reward_energy", "reward_mem", "reward_switch",
             "reward_oom", "action_mask")
#: ``info`` keys of a reset
RESET_KEYS = ("trace", "start", "variant", "action_mask")
_EPISODE_OPTIONS = ("trace", "start", "variant")


class AdaScaleVectorEnv(VectorEnv):
    """``num_envs`` AdaScale environments over arrays; the arguments are :class:`AdaScaleEnv`'s
    (``spec``, ``split``, ``reward``, ``dataset``, ``max_episode_steps``, ...) plus ``num_envs`` and
    ``autoreset_mode``. See the module documentation."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, spec: Any = "Rpi4-Vision", *,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, render_mode: str | None = None,
                 **kwargs: Any):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a whole number >= 1, not {num_envs!r}")
        if render_mode is not None:
            raise ValueError(f"the vector environment does not render (render_mode {render_mode!r}); "
                             f"render a single environment (gymnasium.make)")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"autoreset_mode must be one of {', '.join(m.value for m in AutoresetMode)}, "
                             f"not {autoreset_mode!r}") from None
        #: the single environment whose data, physics, encoder, reward and reset draws every sub-environment uses
        self.base = base = AdaScaleEnv(spec, **kwargs)
        self.num_envs = n = int(num_envs)
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.render_mode = None
        self.single_observation_space = base.observation_space
        self.single_action_space = base.action_space
        self.observation_space = batch_space(base.observation_space, n)
        self.action_space = batch_space(base.action_space, n)
        self.physics = base.physics
        self.encoder = base.encoder
        self.reward = base.reward
        self.period_s = base.period_s
        self.window = base.window
        self.action_names = base.action_names

        # the split's traces, one after another, as columns (plus a spare row: a finished episode's index may
        # point one past its window, and its values are discarded)
        lengths = [len(rows) for rows in base.exo]
        self._trace_offset = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        cols = []
        for k in Exo._fields:
            col = np.array([getattr(r, k) for rows in base.exo for r in rows], dtype=bool if k == "plugged" else None)
            cols.append(np.concatenate([col, col[-1:]]))
        self._exo = Exo(*cols)
        self._trace_names = np.array([t.name for t in base.traces], dtype=object)
        table = self.physics.table
        self._app_table = base.app_physics.table  # the app's model: its predicted latency (AdaScaleEnv.step)
        self._ids = np.array(base.catalog.ids, dtype=object)
        self._peak = table.peak_mem_mb
        self._lat_ref = table.latency_ms
        self._cb = table.compute_bound_frac
        self._overhead = float(base.catalog.runtime_overhead_mb)
        self._n_actions = int(base.action_space.n)
        self._has_battery = base.device.has_battery
        self._has_temp = base.device.temp_sensor

        # the episodes' state, one entry per sub-environment
        self._ar = np.arange(n)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._row0 = np.zeros(n, dtype=np.int64)       # the window's first interval in the columns
        self._t = np.zeros(n, dtype=np.int64)          # intervals played
        self._len = np.ones(n, dtype=np.int64)         # the window's length
        self._trace = np.zeros(n, dtype=np.int64)
        self._start = np.zeros(n, dtype=np.int64)
        self._noise = np.ones((n, self.window + 1))    # the episodes' latency noise (one spare column)
        self._state = PhysicsState(np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n),
                                   np.zeros(n, dtype=bool))
        self._ema = np.zeros(n)                        # the app's running slow-down estimate (log2)
        self._mask = np.ones((n, self._n_actions), dtype=np.int8)
        self._obs = np.zeros((n, self.encoder.size), dtype=np.float32)
        self._ended = np.zeros(n, dtype=bool)          # the episode ended at the last step (not reset since)
        self._ready = False

    # ------------------------------------------------------------------ masks
    def _masks(self, loaded: np.ndarray, killed: np.ndarray, mem_avail_mb: np.ndarray) -> np.ndarray:
        """:meth:`AdaScaleEnv._update_mask` for a batch: a switch to variant i is valid when
        ``peak[i] + resident <= mem_avail_mb`` (nothing resident after an OOM kill); keep and the loaded
        variant are never masked."""
        resident = np.where(killed, 0.0, self._peak[loaded] - self._overhead)
        m = np.empty((loaded.shape[0], self._n_actions), dtype=np.int8)
        np.less_equal(self._peak[None, :] + resident[:, None], mem_avail_mb[:, None], out=m[:, 1:], casting="unsafe")
        m[np.arange(loaded.shape[0]), loaded + 1] = 1
        m[:, KEEP] = 1
        return m

    def action_masks(self) -> np.ndarray:
        """Valid actions of every sub-environment, ``(num_envs, n_actions)`` booleans (MaskablePPO's API)."""
        return self._mask.astype(bool)

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Reset every sub-environment (or those of ``options["reset_mask"]``): sub-environment i with
        ``seed + i`` (an int), ``seed[i]`` (a sequence) or its own generator as it stands (None)."""
        n = self.num_envs
        if seed is None:
            seeds: list = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed must be an int, None or a sequence of {n} seeds, not {len(seeds)} of them")
        options = dict(options or {})
        reset_mask = options.pop("reset_mask", None)
        if reset_mask is None:
            rows = self._ar
        else:
            reset_mask = np.asarray(reset_mask)
            if reset_mask.shape != (n,) or reset_mask.dtype != np.bool_ or not reset_mask.any():
                raise ValueError(f"options['reset_mask'] must be a boolean array of shape ({n},) with a True value")
            rows = np.flatnonzero(reset_mask)
        per_env = {k: v for k, v in options.items() if isinstance(v, (list, tuple, np.ndarray))}
        for k, v in per_env.items():
            if k not in _EPISODE_OPTIONS or len(v) != n:
                raise ValueError(f"reset option {k!r} as a sequence needs one value per sub-environment ({n})")
        shared = {k: v for k, v in options.items() if k not in per_env}
        for i in rows.tolist():
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        if reset_mask is None:
            self._ready = True
        elif not self._ready:
            raise RuntimeError("reset every sub-environment once (reset without reset_mask) before resetting some")
        obs = self._obs.copy()
        info = self._start_episodes(rows, obs, shared, per_env)
        self._ended[rows] = False
        self._obs = obs
        return obs.copy(), info

    def _start_episodes(self, rows: np.ndarray, obs: np.ndarray, shared: dict | None = None,
                        per_env: dict | None = None) -> dict[str, Any]:
        """Start new episodes in the sub-environments ``rows`` (their draws, as AdaScaleEnv.reset draws them);
        write their first observations into ``obs``; return their reset ``info`` as vector info."""
        base, physics = self.base, self.physics
        loaded, temp, level, used, killed = self._state
        n = self.num_envs
        variants = np.empty(len(rows), dtype=np.int64)
        mem0 = np.empty(len(rows))
        for j, i in enumerate(rows.tolist()):
            opts = dict(shared or {})
            for k, v in (per_env or {}).items():
                opts[k] = v[i]
            ti, start, factors, v0 = base.draw_episode(self._rngs[i], opts)
            first = base.exo[ti][start]
            s0 = physics.initial_state(first, v0)
            self._trace[i], self._start[i] = ti, start
            self._row0[i] = self._trace_offset[ti] + start
            self._t[i] = 0
            self._len[i] = len(factors)
            self._noise[i, :len(factors)] = factors
            loaded[i], temp[i], level[i], used[i], killed[i] = v0, s0.temp_c, s0.thermal_level, 0.0, False
            self._ema[i] = 0.0
            obs[i] = base.start_observation(s0, first)
            variants[j] = v0
            mem0[j] = first.mem_avail_mb
        self._mask[rows] = self._masks(variants, np.zeros(len(rows), dtype=bool), mem0)
        present = np.zeros(n, dtype=bool)
        present[rows] = True
        trace = np.full(n, None, dtype=object)
        trace[rows] = self._trace_names[self._trace[rows]]
        start = np.zeros(n, dtype=np.int64)
        start[rows] = self._start[rows]
        variant = np.full(n, None, dtype=object)
        variant[rows] = self._ids[variants]
        mask = np.zeros_like(self._mask)
        mask[rows] = self._mask[rows]
        return {"trace": trace, "_trace": present, "start": start, "_start": present.copy(),
                "variant": variant, "_variant": present.copy(), "action_mask": mask, "_action_mask": present.copy()}

    # ------------------------------------------------------------------ step
    def step(self, actions):
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            a = _as_actions(a, self.num_envs)
        if a.min() < 0 or a.max() >= self._n_actions:
            bad = a[(a < 0) | (a >= self._n_actions)][0]
            raise ValueError(f"action {bad!r} is outside Discrete({self._n_actions})")
        mode = self.autoreset_mode
        restart = self._ended  # NEXT_STEP: the sub-environments whose episode ended at the last step
        if mode is AutoresetMode.DISABLED and restart.any():
            raise RuntimeError(f"sub-environment(s) {np.flatnonzero(restart).tolist()} ended; reset them "
                               f"(options={{'reset_mask': ...}}) before stepping (autoreset is disabled)")
        state = self._state
        loaded = state.loaded
        target = np.where(a == KEEP, loaded, a - 1)
        row = self._row0 + self._t
        exo = Exo(*[c[row] for c in self._exo])
        physics = self.physics
        new, out = physics.step_batch(state, target, exo, Noise(self._noise[self._ar, self._t]), self.period_s)
        serving = out.serving
        on_time = serving.on_time_frac
        miss = 1.0 - on_time
        terms = self.reward.terms(out.accuracy, on_time, out.energy_j, out.mem_mb, out.switched, out.oom)
        reward = terms[0] + terms[1] + terms[2] + terms[3] + terms[4] + terms[5]
        # the app's running estimate of the slow-down its performance model does not explain (as AdaScaleEnv.step)
        predicted = model.expected_latency_ms(self._app_table, {"latency_ms": self._lat_ref[target],
                                                              "compute_bound_frac": self._cb[target]},
                                              freq_mhz=out.freq_mhz, bg_runnable=exo.bg_runnable,
                                              rate_hz=exo.request_rate_hz, deadline_ms=exo.deadline_ms)
        ema = self._ema
        measured = ~out.oom & (serving.served_frac > 0.0)
        ema = np.where(measured, ema + SLOWDOWN_EMA_WEIGHT * (np.log2(out.latency_ms / predicted) - ema), ema)
        t = self._t + 1
        truncated = t >= self._len
        terminated = np.zeros(self.num_envs, dtype=bool)
        nxt = row + ~truncated
        obs = self.encoder.encode_batch(out.freq_mhz, exo.bg_cpu_util, exo.bg_runnable, exo.mem_avail_mb,
                                        out.battery_pct if self._has_battery else None, exo.plugged,
                                        out.temp_c if self._has_temp else None,
                                        self._exo.request_rate_hz[nxt], self._exo.deadline_ms[nxt], target,
                                        (out.latency_ms, target, miss, out.energy_j, out.switched, out.oom, ema))
        mask = self._masks(target, out.oom, exo.mem_avail_mb)
        info = {
            "variant": self._ids[target], "accuracy": out.accuracy, "effective_accuracy": out.accuracy * on_time,
            "latency_ms": out.latency_ms, "service_ms": out.service_ms, "deadline_ms": exo.deadline_ms,
            "bg_runnable": exo.bg_runnable, "energy_mj": out.energy_j * 1000.0, "power_w": out.power_w,
            "mem_mb": out.mem_mb, "miss_rate": miss, "served_frac": serving.served_frac, "switched": out.switched,
            "oom": out.oom, "temp_c": out.temp_c, "freq_mhz": out.freq_mhz, "battery_pct": out.battery_pct,
            "reward_accuracy": terms[0], "reward_miss": terms[1], "reward_energy": terms[2], "reward_mem": terms[3],
            "reward_switch": terms[4], "reward_oom": terms[5], "action_mask": mask,
        }
        # commit (copies: the info arrays above stay as the step left them when episodes restart below)
        self._state = PhysicsState(new.loaded.copy(), new.temp_c.copy(), new.thermal_level, new.battery_used_j.copy(),
                                   new.killed.copy())
        self._ema = ema
        self._t = t
        self._mask = mask.copy()
        if mode is AutoresetMode.NEXT_STEP:
            present = ~restart
            if restart.any():
                rows = np.flatnonzero(restart)
                _blank(info, rows)
                reward[rows] = 0.0
                truncated[rows] = False
                info.update(_merge(self._start_episodes(rows, obs), info))
            for k in STEP_KEYS:
                info[f"_{k}"] = present
            info["_variant"] = info["_action_mask"] = np.ones(self.num_envs, dtype=bool)
            if restart.any():
                info["_trace"] = info["_start"] = restart.copy()
            self._ended = terminated | truncated
        elif mode is AutoresetMode.SAME_STEP:
            done = terminated | truncated
            present = ~done
            if done.any():
                rows = np.flatnonzero(done)
                final_obs = np.full(self.num_envs, None, dtype=object)
                for i in rows.tolist():
                    final_obs[i] = obs[i].copy()
                others = np.flatnonzero(present)
                final_info: dict[str, Any] = {}
                for k in STEP_KEYS:
                    final_info[k] = _zero_rows(info[k], others)
                    final_info[f"_{k}"] = done
                _blank(info, rows)
                info.update(_merge(self._start_episodes(rows, obs), info))
                info["final_obs"], info["_final_obs"] = final_obs, done
                info["final_info"], info["_final_info"] = final_info, done.copy()
            for k in STEP_KEYS:
                info[f"_{k}"] = present
            info["_variant"] = info["_action_mask"] = np.ones(self.num_envs, dtype=bool)
            if done.any():
                info["_trace"] = info["_start"] = done.copy()
            self._ended = np.zeros(self.num_envs, dtype=bool)
        else:
            present = np.ones(self.num_envs, dtype=bool)
            for k in STEP_KEYS:
                info[f"_{k}"] = present
            self._ended = terminated | truncated
        if not present.any():  # no sub-environment reports the step's keys: Gymnasium leaves them out
            for k in STEP_KEYS:
                if k not in RESET_KEYS:
                    del info[k], info[f"_{k}"]
        self._obs = obs
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ what references read
    @property
    def sim_state(self) -> PhysicsState:
        """The simulator's state of every sub-environment (arrays; read-only by convention)."""
        return self._state

    @property
    def t(self) -> np.ndarray:
        """Intervals played in each sub-environment's episode."""
        return self._t.copy()

    def episodes(self) -> list[tuple[int, int]]:
        """The (trace index, window start) each sub-environment is playing."""
        return list(zip(self._trace.tolist(), self._start.tolist()))

    def close_extras(self, **kwargs: Any) -> None:
        self.base.close()

    def __repr__(self) -> str:
        return f"AdaScaleVectorEnv({self.base.env_spec.id}, num_envs={self.num_envs})"


def _as_actions(a: np.ndarray, n: int) -> np.ndarray:
    """Actions as an integer array of shape ``(n,)``, or a ValueError naming what was given."""
    if a.shape != (n,):
        raise ValueError(f"actions must have shape ({n},), not {a.shape}")
    if np.issubdtype(a.dtype, np.floating) and np.all(np.mod(a, 1) == 0):
        return a.astype(np.int64)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"actions must be integers, not {a.dtype}")
    raise ValueError("actions must be whole numbers")


def _blank(info: dict, rows: np.ndarray) -> None:
    """Zero the step's values of sub-environments that do not report them (as Gymnasium's vector info does)."""
    for k in STEP_KEYS:
        v = info[k]
        v[rows] = None if v.dtype == object else 0


def _zero_rows(v: np.ndarray, rows: np.ndarray) -> np.ndarray:
    v = v.copy()
    v[rows] = None if v.dtype == object else 0
    return v


def _merge(reset_info: dict, info: dict) -> dict:
    """A reset's info for some sub-environments laid over the step's: ``variant`` and ``action_mask`` take
    the reset's values in its rows; ``trace`` and ``start`` are the reset's."""
    out = {"trace": reset_info["trace"], "start": reset_info["start"]}
    for k in ("variant", "action_mask"):
        rows = reset_info[f"_{k}"]
        v = info[k]
        v[rows] = reset_info[k][rows]
        out[k] = v
    return out
