from __future__ import annotations

import math

import pytest

from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.evaluation.core import aggregate, ci95, evaluate, tune
from adascale_rl.policies import make_policy


def test_ci95_matches_the_t_distribution_by_hand():
    # n = 5, mean 3, sample sd sqrt(2.5); t(0.975, 4) = 2.776
    assert ci95([1, 2, 3, 4, 5]) == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert math.isnan(ci95([1.0]))


def test_evaluation_is_paired_and_repeatable(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test")
    a = evaluate(env, make_policy("greedy"), [0, 1])
    b = evaluate(env, make_policy("greedy"), [0, 1])
    assert [r.metrics for r in a] == [r.metrics for r in b]
    agg = aggregate(a, [0, 1])
    assert agg["episodes"] == len(a) == 2 * len(env.evaluation_episodes())
    assert 0.0 <= agg["miss_rate"] <= 1.0


def test_tuning_picks_the_best_grid_point_on_train(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="train")
    best, value = tune(env, lambda variant: make_policy("best-fixed", variant=variant),
                       {"variant": [0, 1, 2, 3]}, max_episodes=2)
    from adascale_rl.evaluation.core import mean_return, evaluate as ev

    for v in range(4):
        assert mean_return(ev(env, make_policy("best-fixed", variant=v), [0], env.evaluation_episodes()[:2])) <= value + 1e-9


def test_the_ci_of_the_return_is_over_per_seed_means_not_over_episodes(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test")
    res = evaluate(env, make_policy("random"), [0, 1, 2])
    assert len(env.evaluation_episodes()) > 1  # several episodes per seed: the two readings differ
    per_seed = [sum(r.metrics["return"] for r in res if r.eval_seed == s) / len(env.evaluation_episodes())
                for s in (0, 1, 2)]
    assert aggregate(res, [0, 1, 2])["ci95_return"] == pytest.approx(ci95(per_seed))
    assert math.isnan(aggregate(evaluate(env, make_policy("random"), [0]), [0])["ci95_return"])
