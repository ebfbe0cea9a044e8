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


def test_planner_prior_predicts_the_planners_rewards(fixture_spec):
    from adascale_rl.policies.features import PlannerPrior
    from adascale_rl.policies.heuristics import PlannerPolicy

    env = AdaScaleEnv(fixture_spec, split="test")
    ext = PlannerPrior(env.observation_space, **PlannerPrior.kwargs_for(env))
    planner = PlannerPolicy(q=0.0)
    obs, info = env.reset(seed=0, options={"trace": 0, "start": 0})
    planner.reset(env)
    for t in range(40):
        obs, *_ = env.step([0, 1, 0, 3, 0, 4][t % 6])
        ctx = env.encoder.decode(obs)
        planner.x = ctx["slowdown_ema_log2"] * np.log(2.0)  # the prior's slow-down: the observation's average
        keep, switch = ext.predicted_rewards(th.as_tensor(obs[None]))
        for i in range(len(env.catalog)):
            assert float(keep[0, i]) == pytest.approx(planner.predicted_reward(i, ctx, False), abs=1e-5)
            if i != ctx["loaded"]:
                assert float(switch[0, i]) == pytest.approx(planner.predicted_reward(i, ctx, True), abs=1e-5)


def test_prior_policy_starts_as_the_planner(fixture_spec):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from adascale_rl.policies.features import PlannerPrior, PriorMaskablePolicy
    from adascale_rl.policies.heuristics import PlannerPolicy

    env = AdaScaleEnv(fixture_spec, split="test")
    agent = MaskablePPO(PriorMaskablePolicy, DummyVecEnv([lambda: AdaScaleEnv(fixture_spec)]), seed=0, device="cpu",
                        policy_kwargs={"features_extractor_class": PlannerPrior,
                                       "features_extractor_kwargs": PlannerPrior.kwargs_for(env)})
    planner = PlannerPolicy(q=0.0, horizon=8.0, sigma=0.2)
    obs, info = env.reset(seed=1, options={"trace": 0, "start": 0})
    planner.reset(env)
    agree = 0
    for t in range(50):
        mask = np.asarray(info["action_mask"], dtype=bool)
        a_net, _ = agent.predict(obs, deterministic=True, action_masks=mask)
        a_pl = planner.act(obs, info)
        loaded = env.state.loaded
        # the same decision: the same target variant (keep == asking for the loaded one)
        same = (loaded if int(a_net) == 0 else int(a_net) - 1) == (loaded if a_pl == 0 else a_pl - 1)
        agree += same
        obs, _, _, _, info = env.step(a_pl)
    assert agree >= 48


def test_loaded_prior_policy_acts_as_the_model_predicts(fixture_spec, tmp_path):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from adascale_rl.policies.features import PlannerPrior, PriorMaskablePolicy
    from adascale_rl.policies.ppo import load_policy

    env = AdaScaleEnv(fixture_spec, split="test")
    agent = MaskablePPO(PriorMaskablePolicy, DummyVecEnv([lambda: AdaScaleEnv(fixture_spec)]), seed=0, device="cpu",
                        policy_kwargs={"features_extractor_class": PlannerPrior,
                                       "features_extractor_kwargs": PlannerPrior.kwargs_for(env)})
    agent.save(tmp_path / "model.zip")
    policy = load_policy(tmp_path / "model.zip")
    obs, info = env.reset(seed=2, options={"trace": 0, "start": 0})
    policy.reset(env)
    for _ in range(40):
        mask = np.asarray(info["action_mask"], dtype=bool)
        expect, _ = agent.predict(obs, deterministic=True, action_masks=mask)
        a = policy.act(obs, info)
        assert a == int(expect)
        obs, _, _, _, info = env.step(a)


def test_prior_margins_are_tuned_on_train_like_the_planner_baseline(fixture_spec):
    from adascale_rl.evaluation.core import tune
    from adascale_rl.policies.features import PlannerPrior
    from adascale_rl.policies.heuristics import PlannerPolicy
    from adascale_rl.policies.ppo import _model_kwargs_for
    from adascale_rl.policies.ppo_hyperparams import parse

    train = AdaScaleEnv(fixture_spec, split="train")
    tuned = PlannerPrior.tuned_kwargs(train)
    grid = {k: PlannerPolicy.PARAM_GRID[k] for k in ("horizon", "sigma")}
    expect, _ = tune(train, lambda **kw: PlannerPolicy(**kw), grid)
    assert tuned == {k: float(v) for k, v in expect.items()}

    val = AdaScaleEnv(fixture_spec, split="val")
    entry = {"policy": "adascale_rl.policies.features.PriorMaskablePolicy",
             "policy_kwargs": {"features_extractor_class": "adascale_rl.policies.features.PlannerPrior"}}
    kwargs, got = _model_kwargs_for(parse(entry), val, train)
    fe = kwargs["policy_kwargs"]["features_extractor_kwargs"]
    assert got == tuned and fe["horizon"] == tuned["horizon"] and fe["sigma"] == tuned["sigma"]
    assert fe["latency_ms"] == PlannerPrior.kwargs_for(val)["latency_ms"]
    # what the recipe sets is kept; nothing is tuned when it sets both
    entry["policy_kwargs"]["features_extractor_kwargs"] = {"horizon": 99.0, "sigma": 0.05}
    kwargs, got = _model_kwargs_for(parse(entry), val, train)
    fe = kwargs["policy_kwargs"]["features_extractor_kwargs"]
    assert got == {} and (fe["horizon"], fe["sigma"]) == (99.0, 0.05)
