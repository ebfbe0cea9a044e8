"""rollout.evaluate: a policy that decides in batches plays a seed's episodes side by side, with the results of
playing them one after the other."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import adascale_rl  # noqa: F401  (registers the ids)
from adascale_rl import paths
from adascale_rl.environment.spec import VERSION
from adascale_rl.policies import make_policy
from adascale_rl.policies.ppo import load_policy
from adascale_rl.policies.rollout import batched, evaluate


def _key(results):
    return [(r.policy, r.seed, r.eval_seed, r.trace, r.start, r.steps, r.metrics) for r in results]


class _Counting:
    """A deterministic policy of the observation alone, with a batched form that counts its calls."""

    name = "counting"

    def __init__(self):
        self.batches, self.sizes = 0, []

    def reset(self, env):
        self.n = env.action_space.n

    def _choose(self, obs, mask):
        a = int(abs(float(np.sum(obs))) * 1000) % self.n
        return a if mask is None or mask[a] else 0

    def act(self, obs, info):
        return self._choose(obs, info.get("action_mask"))

    def act_batch(self, obs, infos):
        self.batches += 1
        self.sizes.append(len(obs))
        return np.array([self._choose(o, i.get("action_mask")) for o, i in zip(obs, infos)])


def _env(name="Rpi4-Vision"):
    return gym.make(f"AdaScale/{name}-v{VERSION}", split="test").unwrapped


def test_episodes_side_by_side_give_the_results_of_one_after_the_other():
    env = _env()
    episodes = env.evaluation_episodes()[:5]
    pol = _Counting()
    assert batched(pol, env) and not batched(make_policy("greedy"), env)
    side = evaluate(env, pol, [0, 3], episodes)
    steps = side[0].steps
    assert pol.batches == 2 * steps and pol.sizes[0] == 5  # one call per step of a seed, all its episodes
    one = evaluate(env, pol, [0, 3], episodes, batch=False)
    assert pol.batches == 2 * steps  # the sequential path never batches
    assert _key(side) == _key(one)
    assert [r.eval_seed for r in side] == [0] * 5 + [3] * 5
    # the environment passed in is left usable, and a fork's episode did not leak into it
    assert _key(evaluate(env, pol, [0], episodes[:1])) == _key(one[:1])


def test_a_learned_policy_plays_on_one_torch_thread_and_the_count_is_restored():
    import torch

    class _Seeing(_Counting):
        def act_batch(self, obs, infos):
            self.seen = torch.get_num_threads()
            return super().act_batch(obs, infos)

    class _Learned(_Seeing):
        kind = "learned"

    env, default = _env(), torch.get_num_threads()
    episodes = env.evaluation_episodes()[:2]
    torch.set_num_threads(2)  # whatever this machine's default: a count evaluate changes
    try:
        pol = _Learned()
        evaluate(env, pol, [0], episodes)
        assert pol.seen == 1 and torch.get_num_threads() == 2
        evaluate(env, pol, [0], episodes, threads=None)  # as torch has them
        assert pol.seen == 2
        plain = _Seeing()  # not a learned policy: nothing changed
        evaluate(env, plain, [0], episodes)
        assert plain.seen == 2
    finally:
        torch.set_num_threads(default)


def test_progress_counts_every_episode_side_by_side():
    env = _env()
    done = []
    evaluate(env, _Counting(), [0, 1], env.evaluation_episodes()[:3], progress=done.append)
    assert sum(done) == 6


@pytest.mark.parametrize("recipe", ["ppo", "ppo-noprior"])
def test_the_shipped_controller_plays_the_same_episodes_in_a_batch(recipe):
    """The batched forward rounds the last float32 bits of a logit differently from one observation's; on these
    episodes (and on every shipped controller's whole test split, seeds 0-4, checked when this was written) no
    decision changes, so neither does a result."""

    env = _env()
    policy = load_policy(paths.agents_dir() / "Rpi4-Vision" / recipe)
    assert batched(policy, env)
    episodes = env.evaluation_episodes()[::6]
    side = evaluate(env, policy, [0, 1], episodes)
    one = evaluate(env, policy, [0, 1], episodes, batch=False)
    assert _key(side) == _key(one)
    obs, info = env.reset(seed=1, options={"trace": 0, "start": 0})
    policy.reset(env)
    assert policy.act_batch(np.stack([obs, obs]), [info, info]).tolist() == [policy.act(obs, info)] * 2
