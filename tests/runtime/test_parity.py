"""Parity of the shipped controllers: ONNX Runtime, the numpy forward and the Stable-Baselines3 policy.

For every shipped environment (``envs/*.yaml``) and each of its shipped controllers
(``agents/<env>/<algo>/``, as ``bench`` finds them), the controller is exported and run on
10,000 observations of test-split rollouts. Required: the three choose the identical action
(canonical: "switch to the loaded variant" is keep) on every observation; the exported logits
are within 1e-5 of the logit scale (max(1, max |logit|) of the row) of the SB3 policy's; ONNX
Runtime and numpy within 1e-5 of it too (both compute the prior in float64; their float32 networks
sum in different orders: ~1e-10 of the scale for the shipped recipe, ~1e-6 for networks whose own logits
are in the hundreds). The numbers are printed (``pytest -s``) and recorded as
test properties.

``ADASCALE_RL_PARITY_AGENTS=DIR`` runs the same test on ``DIR/<env>/<algo>/`` instead of the
shipped ``agents/`` (for checking freshly trained controllers before they ship).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adascale_rl import paths
from adascale_rl.environment.spec import spec_files
from adascale_rl.runtime import schema

N_OBSERVATIONS = 10_000


def _controllers(env_name: str) -> dict[str, Path]:
    root = os.environ.get("ADASCALE_RL_PARITY_AGENTS")
    base = Path(root) if root else paths.agents_dir()
    folder = base / env_name
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir())
            if (p / "best_model.zip").exists() or (p / "model.zip").exists()}


@pytest.mark.slow
@pytest.mark.parametrize("env_name", [f.stem for f in spec_files()])
def test_shipped_controllers_export_with_parity(env_name, tmp_path, record_property):
    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.policies.ppo import _spec_of, load_policy
    from adascale_rl.runtime.export import export_controller
    from _parity import compare

    controllers = _controllers(env_name)
    assert controllers, f"no controller for {env_name} (agents/{env_name}/<algo>/ with a model)"
    for algo, path in controllers.items():
        out = export_controller(path, tmp_path / algo)
        policy = load_policy(path)
        env = AdaScaleEnv(_spec_of(policy.config), split="test",
                          **{k: v for k, v in (policy.config.get("env_kwargs") or {}).items() if k != "dataset"})
        policy.reset(env)
        r = compare(policy, out, env, n=N_OBSERVATIONS)
        record_property(f"{env_name}/{algo}", json.dumps(r))
        print(f"\n{env_name}/{algo}: {json.dumps(r)}")
        assert r["observations"] >= N_OBSERVATIONS
        assert r["mismatch_numpy_vs_sb3"] == r["mismatch_onnx_vs_sb3"] == r["mismatch_onnx_vs_numpy"] == 0, r
        assert r["mismatch_numpy_batch_vs_compiled"] == 0, r
        assert r["numpy_vs_sb3_rel"] <= schema.LOGIT_RTOL and r["onnx_vs_sb3_rel"] <= schema.LOGIT_RTOL, r
        assert r["onnx_vs_numpy_rel"] <= schema.LOGIT_RTOL and r["numpy_batch_vs_compiled_rel"] <= schema.LOGIT_RTOL, r
