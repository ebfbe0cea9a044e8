"""Parity of an exported controller: ONNX Runtime, the numpy forward and the Stable-Baselines3 policy.

A plain module shared by the parity tests (and usable from a shell to print the numbers):
``python tests/runtime/_parity.py RUN_FOLDER EXPORTED_FOLDER [N]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from adascale_rl.environment.observation import N_CONTEXT
from adascale_rl.runtime import schema
from adascale_rl.runtime.export import canonical, rollout_observations, sb3_logits
from adascale_rl.runtime.numpy_policy import NumpyPolicy, array_shapes


def load_numpy_policy(folder: Path) -> NumpyPolicy:
    doc = json.loads((folder / schema.SELECTOR_JSON).read_text())
    with np.load(folder / schema.POLICY_NPZ, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    size, n_actions = doc["observation"]["size"], len(doc["actions"])
    assert set(array_shapes(doc["policy"], size, n_actions)) <= set(arrays)
    return NumpyPolicy(doc["policy"], arrays, size, n_actions)


def compare(policy, folder: Path, env, n: int = 10_000) -> dict:
    """Decisions and logits of the three implementations on ``n`` test-split observations of ``env``.

    ``policy`` is the loaded :class:`~adascale_rl.policies.ppo.PPOPolicy`; ``folder`` its export. Returns
    the counts of differing canonical actions per pair and the largest logit deviations, absolute and
    relative to the row's logit scale (max(1, max |logit|)).
    """
    import onnxruntime as ort

    npp = load_numpy_policy(folder)
    n_variants = len(env.catalog)
    obs, masks = rollout_observations(env, lambda o, m: npp(o, m)[0], n, epsilon=0.2)
    ref = np.concatenate([sb3_logits(policy, obs[i:i + 2048]) for i in range(0, len(obs), 2048)])
    ref_actions = canonical(np.argmax(np.where(masks, ref, -np.inf), axis=1), obs, N_CONTEXT, n_variants)
    batch_actions, batch_logits = npp.batch(obs, masks)
    one = [(a, lg.copy()) for a, lg in (npp(o, m) for o, m in zip(obs, masks))]  # lg is the policy's buffer
    fast_actions = np.array([a for a, _ in one])
    fast_logits = np.array([lg for _, lg in one])
    sess = ort.InferenceSession(str(folder / schema.POLICY_ONNX), providers=["CPUExecutionProvider"])
    ort_actions, ort_logits = sess.run(None, {"observation": obs, "action_mask": masks})
    scale = schema.logit_scale(ref)[:, None]

    def dev(a, b):
        d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
        return float(d.max()), float((d / scale).max())

    out = {"observations": int(len(obs)), "logit_scale_max": float(scale.max()),
           "logit_scale_min": float(scale.min()),
           "mismatch_numpy_vs_sb3": int(np.sum(fast_actions != ref_actions)),
           "mismatch_onnx_vs_sb3": int(np.sum(ort_actions != ref_actions)),
           "mismatch_onnx_vs_numpy": int(np.sum(ort_actions != fast_actions)),
           "mismatch_numpy_batch_vs_compiled": int(np.sum(batch_actions != fast_actions)),
           "switch_decisions": int(np.sum(ref_actions != 0)),
           "loaded_variants_seen": int(len(np.unique(np.argmax(obs[:, N_CONTEXT:], axis=1))))}
    out["numpy_vs_sb3_abs"], out["numpy_vs_sb3_rel"] = dev(fast_logits, ref)
    out["onnx_vs_sb3_abs"], out["onnx_vs_sb3_rel"] = dev(ort_logits, ref)
    out["onnx_vs_numpy_abs"], out["onnx_vs_numpy_rel"] = dev(ort_logits, fast_logits)
    out["numpy_batch_vs_compiled_abs"], out["numpy_batch_vs_compiled_rel"] = dev(batch_logits, fast_logits)
    out["sb3_float32_vs_float64_abs"], out["sb3_float32_vs_float64_rel"] = dev(ref, sb3_float64_logits(policy, obs))
    return out


def sb3_float64_logits(policy, obs: np.ndarray) -> np.ndarray:
    """The Stable-Baselines3 policy's own modules run in float64 (prior buffers from the table's float64
    numbers): what its float32 logits would be without float32 rounding."""
    import copy

    import torch as th

    from adascale_rl.policies.prior import PriorMaskablePolicy

    sb3 = copy.deepcopy(policy.model.policy).double()
    ext = sb3.pi_features_extractor
    if hasattr(ext, "table"):
        for k, v in ext.table.arrays().items():
            ext._buffers[k] = th.tensor(v, dtype=th.float64)
    o = np.asarray(obs, dtype=np.float32)
    if policy.obs_norm is not None:
        o = policy.obs_norm.normalize_obs(o).astype(np.float32)
    with th.no_grad():
        x = th.as_tensor(o.astype(np.float64))
        logits = sb3.action_net(sb3.mlp_extractor.forward_actor(ext(x)))
        if isinstance(sb3, PriorMaskablePolicy):
            logits = logits + ext.last_prior
    return logits.numpy()


if __name__ == "__main__":  # pragma: no cover - a tool
    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.policies import ppo

    run, exported = Path(sys.argv[1]), Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    pol = ppo.load_policy(run)
    env = AdaScaleEnv(ppo._spec_of(pol.config), split="test")
    pol.reset(env)
    print(json.dumps({"env": env.env_spec.id, **compare(pol, exported, env, n)}, indent=1))
