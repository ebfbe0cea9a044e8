"""Recipe callbacks that change what PPO trains: the critic warm-up."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch as th

from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.policies.callbacks import CriticWarmup, actor_parameters


def _agent(spec):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    return MaskablePPO("MlpPolicy", DummyVecEnv([lambda: AdaScaleEnv(spec)]), n_steps=64, batch_size=64, n_epochs=2,
                       learning_rate=1e-3, seed=0, device="cpu")


def _copy(params):
    return [p.detach().clone() for p in params]


def test_critic_warmup_trains_only_the_value_function_until_its_step_count(fixture_spec):
    agent = _agent(fixture_spec)
    actor0 = _copy(actor_parameters(agent.policy))
    critic0 = _copy(agent.policy.value_net.parameters())
    agent.learn(128, callback=CriticWarmup(steps=10_000))
    assert all(th.equal(a, b) for a, b in zip(actor0, actor_parameters(agent.policy)))
    assert not all(th.equal(a, b) for a, b in zip(critic0, agent.policy.value_net.parameters()))
    assert all(p.requires_grad for p in agent.policy.parameters())  # left trainable for whatever runs next
    # past the warm-up (the count includes the steps already done) the actor learns too
    agent.learn(128, callback=CriticWarmup(steps=128), reset_num_timesteps=False)
    assert not all(th.equal(a, b) for a, b in zip(actor0, actor_parameters(agent.policy)))


def test_critic_warmup_refuses_a_negative_step_count():
    with pytest.raises(ValueError, match="steps must be >= 0"):
        CriticWarmup(steps=-1)


def test_training_in_the_tests_leaves_no_sb3_folder_in_the_temp_dir(fixture_spec):
    agent = _agent(fixture_spec)
    agent.learn(64)
    folder = Path(agent.logger.get_dir())
    # SB3's default is <temp dir>/SB3-<date-time>, created and never removed (tests/conftest.py)
    assert folder == Path(os.environ["SB3_LOGDIR"]) and folder.parent != Path(tempfile.gettempdir())
    assert not folder.name.startswith("SB3-")
