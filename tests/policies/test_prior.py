"""The learned controller's prior computes, in torch, what the planner heuristic computes in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from adascale_rl.device import model
from adascale_rl.environment.actions import target_of
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.observation import INDEX, decode_planning
from adascale_rl.policies.prior import PlannerPrior, PriorMaskablePolicy, VariantSlack


def _observations(env, n=40, seed=0):
    obs, _ = env.reset(seed=seed, options={"trace": 0, "start": 0})
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        obs, *_ = env.step(int(rng.integers(0, env.action_space.n)) if rng.random() < 0.2 else 0)
        rows.append(obs)
    batch = np.array(rows, dtype=np.float32)
    batch[:, INDEX["bg_runnable_per_core"]] = rng.uniform(0, 3, len(batch))  # vary the run queue
    batch[:, INDEX["clock_frac"]] = rng.uniform(0.4, 1.0, len(batch))  # and the clock
    return batch


def test_variant_slack_is_the_performance_models_prediction(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test")
    ext = VariantSlack(env.observation_space, **VariantSlack.kwargs_for(env))
    batch = _observations(env)
    ctx = decode_planning(th.as_tensor(batch), **env.encoder.constants())
    pred = ext.predicted_ms(ctx).numpy()
    t = env.physics.table
    for row, p in zip(batch.astype(np.float64), pred):
        d = env.encoder.decode(row)
        expect = model.expected_latency_ms(t, t.arrays(), freq_mhz=d["freq_mhz"], bg_runnable=d["bg_runnable"],
                                           rate_hz=d["request_rate_hz"], deadline_ms=d["deadline_ms"])
        np.testing.assert_allclose(p, expect, rtol=2e-5)
    out = ext(th.as_tensor(batch))
    assert out.shape == (len(batch), env.observation_space.shape[0] + len(env.catalog))
    assert th.all(out[:, -len(env.catalog):].abs() <= 1.0)


def test_planner_prior_values_are_the_planner_heuristics(fixture_spec):
    from adascale_rl.policies.heuristics import PlannerPolicy

    env = AdaScaleEnv(fixture_spec, split="test")
    ext = PlannerPrior(env.observation_space, **PlannerPrior.kwargs_for(env), temperature=1.0)
    planner = PlannerPolicy(q=0.0)
    obs, info = env.reset(seed=0, options={"trace": 0, "start": 0})
    planner.reset(env)
    for t in range(40):
        obs, *_ = env.step([0, 1, 0, 3, 0, 4][t % 6])
        ctx = planner.decode(obs)
        planner.x = float(np.log(ctx["slowdown"][0, 0]))  # the prior's slow-down: the observation's average
        got = ext.prior_logits(ext.decode(th.as_tensor(obs[None]))).numpy()[0]
        np.testing.assert_allclose(got, planner.values(ctx), rtol=2e-5, atol=2e-5)


def test_prior_policy_starts_as_the_planner(fixture_spec):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

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
        loaded = env.sim_state.loaded
        agree += target_of(int(a_net), loaded) == target_of(a_pl, loaded)  # the same decision
        obs, _, _, _, info = env.step(a_pl)
    assert agree >= 48


def test_loaded_prior_policy_acts_as_the_model_predicts(fixture_spec, tmp_path):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

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
    from adascale_rl.policies.heuristics import PlannerPolicy
    from adascale_rl.policies.ppo import _model_kwargs_for
    from adascale_rl.policies.ppo_hyperparams import parse
    from adascale_rl.policies.rollout import tune

    train = AdaScaleEnv(fixture_spec, split="train")
    tuned = PlannerPrior.tuned_kwargs(train)
    grid = {k: PlannerPolicy.PARAM_GRID[k] for k in ("horizon", "sigma")}
    expect, _ = tune(train, lambda **kw: PlannerPolicy(**kw), grid)
    assert tuned == {k: float(v) for k, v in expect.items()}

    val = AdaScaleEnv(fixture_spec, split="val")
    entry = {"policy": "adascale_rl.policies.prior.PriorMaskablePolicy",
             "policy_kwargs": {"features_extractor_class": "adascale_rl.policies.prior.PlannerPrior"}}
    kwargs, got = _model_kwargs_for(parse(entry), val, train)
    fe = kwargs["policy_kwargs"]["features_extractor_kwargs"]
    assert got == tuned and fe["horizon"] == tuned["horizon"] and fe["sigma"] == tuned["sigma"]
    assert fe["table"] == PlannerPrior.kwargs_for(val)["table"]
    # what the recipe sets is kept; nothing is tuned when it sets both
    entry["policy_kwargs"]["features_extractor_kwargs"] = {"horizon": 99.0, "sigma": 0.05}
    kwargs, got = _model_kwargs_for(parse(entry), val, train)
    fe = kwargs["policy_kwargs"]["features_extractor_kwargs"]
    assert got == {} and (fe["horizon"], fe["sigma"]) == (99.0, 0.05)
