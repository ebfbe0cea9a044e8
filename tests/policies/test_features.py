"""The policy-side variant features agree with the physics' profiler model."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from adascale_rl.device.physics import median_latency_ms
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.policies.features import VariantSlack


def test_variant_slack_matches_the_profiler_latency_model(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test")
    ext = VariantSlack(env.observation_space, **VariantSlack.kwargs_for(env))
    obs, _ = env.reset(seed=0, options={"trace": 0, "start": 0})
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(20):
        obs, *_ = env.step(int(rng.integers(0, env.action_space.n)) if rng.random() < 0.2 else 0)
        rows.append(obs)
    batch = np.array(rows, dtype=np.float32)
    batch[:, 2] = rng.uniform(0, 1, len(batch))  # vary the background load
    batch[:, 0] = rng.uniform(0.4, 1.0, len(batch))  # and the clock
    pred = ext.predicted_ms(th.as_tensor(batch)).numpy()
    budget = ext.budget_ms(th.as_tensor(batch)).numpy()[:, 0]
    for row, p, b in zip(batch, pred, budget):
        ctx = env.encoder.decode(row)
        expect = [median_latency_ms(v, ctx["freq_mhz"], env.device.f_max_mhz, env.device.cores, ctx["bg_cpu_util"], 1.0)
                  for v in env.catalog.variants]
        np.testing.assert_allclose(p, expect, rtol=1e-4)
        assert b == pytest.approx(min(ctx["deadline_ms"], 1000.0 / ctx["request_rate_hz"]), rel=1e-4)
    out = ext(th.as_tensor(batch))
    assert out.shape == (len(batch), env.observation_space.shape[0] + len(env.catalog))
    assert th.all(out[:, -len(env.catalog):].abs() <= 1.0)
