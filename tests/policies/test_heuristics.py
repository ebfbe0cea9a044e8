"""Heuristics and references: what they may read, and how they rank."""

from __future__ import annotations

import numpy as np
import pytest

from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.evaluation.core import evaluate, run_episode
from adascale_rl.policies import BUILTIN, HEURISTICS, REFERENCES, make_policy
from _envdata import constant_trace, write_env


def _varied(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    d = constant_trace(n, request_rate_hz=8, deadline_ms=150, ambient_temp_c=32)
    d["bg_cpu_util"] = np.repeat(rng.uniform(0, 1, n // 20), 20)
    d["mem_avail_mb"] = np.repeat(rng.choice([70.0, 120.0, 2000.0], n // 30), 30)
    return d


@pytest.fixture(scope="module")
def varied_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("varied")
    spec = write_env(tmp, train={f"t{i}": _varied(240, i) for i in range(4)},
                     test={f"e{i}": _varied(240, 10 + i) for i in range(2)}, steps=120)
    return spec


class PublicView:
    """What a deployed device knows: no simulator state, no future, no noise."""

    def __init__(self, env):
        self.catalog, self.device, self.encoder = env.catalog, env.device, env.encoder
        self.reward_fn, self.reward, self.period_s = env.reward_fn, env.reward, env.period_s


@pytest.mark.parametrize("name", list(HEURISTICS))
def test_heuristics_run_on_what_a_device_knows_only(varied_env, name):
    env = AdaScaleEnv(varied_env, split="test")
    policy = make_policy(name)
    obs, info = env.reset(seed=0, options={"trace": 0, "start": 0})
    policy.reset(PublicView(env))
    for _ in range(60):
        a = policy.act(obs, info)
        assert 0 <= a < env.action_space.n
        obs, r, term, trunc, info = env.step(a)


@pytest.mark.parametrize("name", ["greedy", "greedy-kalman", "greedy-hysteresis", "planner"])
def test_adaptive_heuristics_respect_the_mask(varied_env, name):
    env = AdaScaleEnv(varied_env, split="test")
    policy = make_policy(name)
    obs, info = env.reset(seed=1, options={"trace": 1, "start": 0})
    policy.reset(env)
    for _ in range(120):
        a = policy.act(obs, info)
        assert info["action_mask"][a] == 1
        obs, r, term, trunc, info = env.step(a)
        if trunc:
            break


def test_static_policy_evaluation_equals_a_direct_rollout(varied_env):
    env = AdaScaleEnv(varied_env, split="test")
    res = run_episode(env, make_policy("static-smallest"), seed=5, trace=1, start=0)
    obs, info = env.reset(seed=5, options={"trace": 1, "start": 0})
    smallest = env.catalog.smallest
    total, done, first = 0.0, False, True
    while not done:
        loaded = int(np.argmax(obs[-len(env.catalog):]))
        action = 0 if loaded == smallest else smallest + 1
        obs, r, term, trunc, info = env.step(action)
        total += r
        done = term or trunc
    assert res.metrics["return"] == pytest.approx(total, rel=1e-12)


def test_oracle_scores_at_least_every_other_policy_on_every_episode(varied_env):
    env = AdaScaleEnv(varied_env, split="test")
    episodes = env.evaluation_episodes()
    oracle = evaluate(env, make_policy("oracle"), [0, 1], episodes)
    for name in BUILTIN:
        if name == "oracle":
            continue
        other = evaluate(env, make_policy(name), [0, 1], episodes)
        for o, h in zip(oracle, other):
            assert (o.seed, o.trace, o.start) == (h.seed, h.trace, h.start)
            assert o.metrics["return"] >= h.metrics["return"] - 1e-9, (name, o.trace, o.start)


def test_oracle_plan_is_what_it_plays(varied_env):
    env = AdaScaleEnv(varied_env, split="test")
    policy = make_policy("oracle")
    res = run_episode(env, policy, seed=3, trace=0, start=0)
    assert res.metrics["return"] == pytest.approx(policy.planned_return, rel=1e-12)


def test_adaptive_heuristics_beat_the_static_extremes_on_a_varied_trace(varied_env):
    env = AdaScaleEnv(varied_env, split="test")
    score = {n: np.mean([r.metrics["return"] for r in evaluate(env, make_policy(n), [0, 1])])
             for n in ("static-largest", "static-smallest", "greedy-kalman", "planner")}
    assert score["planner"] > max(score["static-largest"], score["static-smallest"])
    assert score["greedy-kalman"] > score["static-largest"]


def test_unknown_policy_is_refused_clearly():
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("clever")
    with pytest.raises(ValueError, match="no parameter"):
        make_policy("greedy", horizon=3)


def test_context_oracle_plans_without_the_episodes_noise(varied_env):
    from adascale_rl.policies.oracle import ContextOraclePolicy, simulate_plan

    env = AdaScaleEnv(varied_env, split="test")
    plans = []
    for seed in (3, 4):  # same window, different noise draws
        env.reset(seed=seed, options={"trace": 0, "start": 0})
        policy = ContextOraclePolicy(samples=2)
        policy.reset(env)
        assert all(n != env.episode.noise for n in policy.noises(env))
        plans.append(policy.targets)
        # and it plays that plan, open loop
        r, _ = simulate_plan(env, policy.targets)
        assert run_episode(env, policy, seed=seed, trace=0, start=0).metrics["return"] == pytest.approx(r, rel=1e-12)
    assert plans[0] == plans[1]
    with pytest.raises(ValueError, match="samples must be >= 1"):
        ContextOraclePolicy(samples=0)
