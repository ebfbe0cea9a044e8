"""The exported controller's forward in numpy: what ``policy.onnx`` computes, without torch or ONNX Runtime.

From the raw observation and the action mask to the chosen action, in the order the
Stable-Baselines3 policy computes it (:class:`adascale_rl.policies.ppo.PPOPolicy`):

1. observation normalisation, if the run normalised observations (VecNormalize's frozen
   mean, variance, epsilon and clip; the result rounded to float32 as the policy sees it);
2. the features: the observation, plus the per-variant slack
   (:func:`adascale_rl.policies.planning.slack`) when the features extractor adds it;
3. the network: the policy MLP and the action head, in float32 as trained;
4. the planner prior (:func:`adascale_rl.policies.planning.predicted_rewards` and
   :func:`~adascale_rl.policies.planning.action_values` over
   :func:`~adascale_rl.environment.observation.decode_planning`, divided by the temperature),
   added to the network's logits;
5. the mask (masked logits are -inf), the argmax, and one canonical action per decision:
   asking for the variant already loaded is a keep, so it is reported as 0.

Steps 1, 2 and 4 are the shared numpy/torch functions, computed here in float64 (the
exported ONNX graph does the same); the prior's ``1 / temperature`` (several hundred)
magnifies float32 rounding, which float64 removes. :meth:`NumpyPolicy.batch` calls them
directly on arrays; :meth:`NumpyPolicy.__call__`, the selector's path, runs them as one
compiled program (:mod:`adascale_rl.runtime.tape`), ~7x faster on one observation.

This module imports numpy and the package's numpy modules only.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from adascale_rl.device.model import VariantTable
from adascale_rl.environment.observation import N_CONTEXT, decode_planning
from adascale_rl.environment.reward import Reward
from adascale_rl.policies import planning
from adascale_rl.runtime import tape

#: hidden-layer activations the exporter and this forward support (Stable-Baselines3's names: ``nn.Tanh`` ...)
ACTIVATIONS = ("tanh", "relu")


class PolicyFormatError(ValueError):
    """The ``policy`` section of selector.json or the arrays of policy.npz do not describe a forward we can run."""


def _activation(name: str):
    if name == "tanh":
        return lambda h: np.tanh(h, out=h)
    if name == "relu":
        return lambda h: np.maximum(h, 0.0, out=h)
    raise PolicyFormatError(f"activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}")


def array_shapes(spec: Mapping[str, Any], obs_size: int, n_actions: int) -> dict[str, tuple[int, ...]]:
    """The arrays policy.npz must hold for this ``policy`` section, with their shapes."""
    n_variants = n_actions - 1
    width = obs_size + (n_variants if spec["slack"] else 0)
    shapes: dict[str, tuple[int, ...]] = {}
    for i, h in enumerate(spec["net"]["hidden"]):
        shapes[f"pi_w{i}"] = (width, h)
        shapes[f"pi_b{i}"] = (h,)
        width = h
    shapes["action_w"] = (width, n_actions)
    shapes["action_b"] = (n_actions,)
    if spec["obs_norm"] is not None:
        shapes["obs_mean"] = (obs_size,)
        shapes["obs_var"] = (obs_size,)
    return shapes


def first_argmax(values: np.ndarray) -> int:
    """``int(values.argmax())`` of a 1-D float array, nan included (the first nan wins), without numpy's argmax.

    ``ndarray.argmax`` hands the GIL back around its loop whatever the size; with another
    thread alive (the selector's run-queue sampler) that thread switch leaves the next forward
    running on cold caches (docs/DEPLOY.md, "Overhead"). A list's ``max`` and
    ``index`` over a handful of numbers keep the GIL and give the same index.
    """
    vals = values.tolist()
    best, total = max(vals), sum(vals)
    if best != best or total != total:  # a nan somewhere (or +inf beside -inf): numpy's answer
        return int(values.argmax())
    return vals.index(best)


class NumpyPolicy:
    """The controller of an exported folder, as a numpy function of (observation, mask).

    ``spec`` is the ``policy`` section of selector.json (``kind: network``), ``arrays`` the
    contents of policy.npz (already checked against :func:`array_shapes`), ``obs_size`` and
    ``n_actions`` the observation width and ``1 + variants``.
    """

    def __init__(self, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray], obs_size: int, n_actions: int):
        self.spec = spec
        self.obs_size = int(obs_size)
        self.n_actions = int(n_actions)
        self.n_variants = self.n_actions - 1
        self.slack = bool(spec["slack"])
        prior = spec.get("prior")
        self.prior = prior is not None
        if self.slack or self.prior:
            self.table = VariantTable.from_dict(spec["table"])
            self.table_arrays = self.table.arrays()
            self.encoder = dict(spec["encoder"])
            self.encoder["n_variants"] = int(self.encoder["n_variants"])
            if self.table.n != self.n_variants or self.encoder["n_variants"] != self.n_variants:
                raise PolicyFormatError(f"the variant table has {self.table.n} variants and the encoder "
                                        f"{self.encoder['n_variants']}, but there are {self.n_variants} actions - 1")
        if self.prior:
            r = dict(prior["reward"])
            weights = {k: v for k, v in r.items() if k not in ("energy_budget_j", "mem_total_mb")}
            self.reward = Reward(**weights).scaled(r["energy_budget_j"], r["mem_total_mb"])
            self.sigma, self.horizon = float(prior["sigma"]), float(prior["horizon"])
            self.temperature, self.dt_s = float(prior["temperature"]), float(prior["period_s"])
        norm = spec.get("obs_norm")
        self.norm = None
        if norm is not None:
            std = np.sqrt(np.asarray(arrays["obs_var"], dtype=np.float64) + float(norm["epsilon"]))
            self.norm = (np.asarray(arrays["obs_mean"], dtype=np.float64), std, float(norm["clip_obs"]))
        hidden = list(spec["net"]["hidden"])
        self.weights = [(np.ascontiguousarray(arrays[f"pi_w{i}"], dtype=np.float32),
                         np.ascontiguousarray(arrays[f"pi_b{i}"], dtype=np.float32)) for i in range(len(hidden))]
        self.head = (np.ascontiguousarray(arrays["action_w"], dtype=np.float32),
                     np.ascontiguousarray(arrays["action_b"], dtype=np.float32))
        self.activation = spec["net"]["activation"]
        self._act = _activation(self.activation)
        self._program: tape.Program | None = None

    # ------------------------------------------------------------------ the shared part, any batch size
    def features_and_prior(self, xp, obs):
        """(normalised observation, slack or None, prior logits or None) of ``obs`` ``(B, size)`` (float64 values
        of float32 numbers), computed with ``xp`` (numpy's namespace, or the tape's recorder)."""
        x = obs
        if self.norm is not None:
            mean, std, clip = self.norm
            x = xp.f32(xp.clip((x - mean) / std, -clip, clip))
        if not (self.slack or self.prior):
            return x, None, None
        ctx = decode_planning(x, **self.encoder, xp=xp)
        slack = planning.slack(self.table, self.table_arrays, ctx, xp=xp) if self.slack else None
        prior = None
        if self.prior:
            keep, switch = planning.predicted_rewards(self.table, self.table_arrays, self.reward, ctx, self.sigma,
                                                      self.dt_s, xp=xp)
            prior = planning.action_values(keep, switch, ctx["loaded"], ctx["killed"], self.horizon,
                                           xp=xp) / self.temperature
        return x, slack, prior

    def _network(self, features32: np.ndarray) -> np.ndarray:
        h = features32
        for w, b in self.weights:
            h = h @ w
            h += b
            self._act(h)
        out = h @ self.head[0]
        out += self.head[1]
        return out

    def _loaded(self, obs: np.ndarray) -> np.ndarray:
        return np.argmax(obs[..., N_CONTEXT:N_CONTEXT + self.n_variants], axis=-1)

    def batch(self, obs: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(actions ``(B,)``, logits ``(B, 1 + n)`` float64) for raw observations ``(B, size)``: the shared
        functions called on arrays (the reference the compiled path is tested against)."""
        o32 = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_size)
        with np.errstate(all="ignore"):
            x, slack, prior = self.features_and_prior(tape.NUMPY, o32.astype(np.float64))
            feats = x if slack is None else np.concatenate([x, slack], axis=1)
            logits = self._network(feats.astype(np.float32)).astype(np.float64)
            if prior is not None:
                logits = logits + prior
        return self._choose(o32, logits, mask), logits

    def _choose(self, obs: np.ndarray, logits: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        masked = logits if mask is None else np.where(np.asarray(mask, dtype=bool).reshape(logits.shape), logits,
                                                      -np.inf)
        action = np.argmax(masked, axis=-1)
        return np.where(action == self._loaded(obs) + 1, 0, action)

    # ------------------------------------------------------------------ one observation, fast
    def compile(self, example: np.ndarray) -> None:
        """Trace the shared part on ``example`` (one observation) and preallocate the network's buffers.

        Everything a call can do once is done here: the buffers are 1-D (a vector-matrix
        product costs about half a ``(1, n) @ (n, m)`` one on these sizes), the program's
        outputs are copied into views of the float32 feature vector, and the mask's fill value
        is a constant row. The products are ``np.matmul``, not ``np.dot``: ``np.dot`` hands the
        GIL back around every BLAS call, and with another thread alive (the selector's run-queue
        sampler) that costs a thread switch the next forward pays for in cold caches (with the argmax
        below, the forward's p50 79.8 -> 61.5 µs, ``benchmarks/selector_overhead.py``, docs/DEPLOY.md);
        ``np.matmul`` on these small products (64 wide) showed no such switch in that benchmark (numpy releases
        the GIL only for loops above a size threshold; not measured here for wider layers).
        """
        ex = np.asarray(example, dtype=np.float32).astype(np.float64).reshape(-1)

        def fn(xp, obs):
            x, slack, prior = self.features_and_prior(xp, obs)
            return tuple(v for v in (x, slack, prior) if v is not None)

        self._program = tape.trace(fn, ex)
        width = self.obs_size + (self.n_variants if self.slack else 0)
        self._feats = np.zeros(width, dtype=np.float32)
        # the program's outputs are (1, k): views of the same shape into the 1-D features
        self._x_view = self._feats[:self.obs_size].reshape(1, -1)
        self._slack_view = self._feats[self.obs_size:].reshape(1, -1)
        self._layers = [(np.ascontiguousarray(w), np.ascontiguousarray(b), np.zeros(w.shape[1], dtype=np.float32))
                        for w, b in self.weights]
        self._net_out = np.zeros(self.n_actions, dtype=np.float32)
        self._logits = np.zeros(self.n_actions, dtype=np.float64)
        self._masked = np.zeros(self.n_actions, dtype=np.float64)
        self._all_masked = np.full(self.n_actions, -math.inf)
        self._obs32 = np.zeros(self.obs_size, dtype=np.float32)
        self._loaded_at = N_CONTEXT

    def __call__(self, obs: np.ndarray, mask: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """(action, logits ``(1 + n,)`` float64) for one raw observation. The logits are a buffer of this
        policy, overwritten by the next call (copy what you keep). Not thread-safe."""
        if self._program is None:
            self.compile(obs)
        o = obs
        if o.dtype != np.float32:  # float32, as the policy sees it
            o = self._obs32
            np.copyto(o, obs, casting="unsafe")
        outs = self._program(o)
        self._x_view[...] = outs[0]  # float64 -> float32, as the network sees its input
        if self.slack:
            self._slack_view[...] = outs[1]
        h = self._feats
        act = self._act
        matmul = np.matmul
        for w, b, buf in self._layers:
            matmul(h, w, buf)
            np.add(buf, b, buf)
            act(buf)
            h = buf
        net = self._net_out
        matmul(h, self.head[0], net)
        np.add(net, self.head[1], net)
        logits = self._logits
        if self.prior:
            np.add(net, outs[-1][0], logits)
        else:
            logits[...] = net
        if mask is None:
            action = first_argmax(logits)
        else:
            if type(mask) is not np.ndarray or mask.dtype != np.bool_:
                mask = np.asarray(mask, dtype=bool)
            masked = self._masked
            masked[...] = self._all_masked
            np.copyto(masked, logits, where=mask)
            action = first_argmax(masked)
        n0 = self._loaded_at
        if action and action == first_argmax(o[n0:n0 + self.n_variants]) + 1:
            action = 0
        return action, logits

    @property
    def fallbacks(self) -> int:
        """Calls the compiled program handed to numpy's eager path (a float overflowed or hit a pole)."""
        return 0 if self._program is None else self._program.fallbacks
