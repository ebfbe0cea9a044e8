"""Training and validation on the native vector environment give what the single environments give.

* The SB3 adapter (:class:`SB3VectorEnv` under ``VecMonitor``) against a ``DummyVecEnv`` of
  single environments under ``Monitor``, seeded alike: observations, rewards, dones, every
  ``info`` (terminal observations and ``TimeLimit.truncated`` included) and the masks.
* Validation in a vector environment (every window at once) against today's one-by-one
  validation: the same windows and seeds, the same numbers.
* A training run with ``vectorized: true`` against the same run on single environments: in
  practice identical (observations agree bit for bit and rewards to an ulp, which the
  float32 rollout buffer hides), so the test asks for the same validation history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from sb3_contrib import MaskablePPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from adascale_rl.environment.vector import AdaScaleVectorEnv
from adascale_rl.policies.ppo import make_env, train
from adascale_rl.policies.ppo_hyperparams import HyperparamsError, load_recipe, parse
from adascale_rl.policies.ppo_run import (EVAL_SEED, model_actor, pick_episodes, run_episodes, run_episodes_vec,
                                         validation_episodes)
from adascale_rl.policies.sb3_vec import SB3VectorEnv
from _envdata import write_env

from test_ppo import TINY, _spec_yaml  # noqa: E402  (tests/policies is on the path under pytest)


def _rough_spec(tmp_path):
    rng = np.random.default_rng(3)

    def trace(n):
        return {"t_s": np.arange(n, dtype=float), "bg_cpu_util": rng.uniform(0, 1, n),
                "mem_avail_mb": rng.choice([80.0, 120.0, 2000.0], n), "request_rate_hz": rng.choice([0.0, 8.0, 30.0], n),
                "deadline_ms": rng.choice([40.0, 150.0], n)}

    return write_env(tmp_path, train={f"t{i}": trace(n) for i, n in enumerate((30, 45, 70, 52, 90))},
                     test={"e0": trace(40)}, steps=25)


def _same_info(a: dict, b: dict):
    assert set(a) - {"episode"} == set(b) - {"episode"}
    for k, v in b.items():
        if k == "episode":
            assert a[k]["l"] == v["l"] and a[k]["r"] == pytest.approx(v["r"], rel=1e-6)
        elif k == "terminal_observation":
            np.testing.assert_array_max_ulp(a[k], v, maxulp=1)
        elif isinstance(v, np.ndarray):
            np.testing.assert_array_equal(a[k], v)
        elif isinstance(v, float):
            assert a[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
        else:
            assert a[k] == v and type(a[k]) is type(v), k


def test_the_sb3_adapter_is_a_dummy_vec_env_of_single_envs(tmp_path):
    spec = _rough_spec(tmp_path)
    n = 4
    ours = VecMonitor(SB3VectorEnv(AdaScaleVectorEnv(n, spec, split="train", autoreset_mode="SameStep")))
    theirs = DummyVecEnv([lambda: Monitor(make_env(spec, "train")) for _ in range(n)])
    ours.seed(9)
    theirs.seed(9)
    np.testing.assert_array_equal(ours.reset(), theirs.reset())
    for a, b in zip(ours.unwrapped.reset_infos, theirs.reset_infos):
        _same_info(a, b)
    rng = np.random.default_rng(0)
    dones = 0
    for _ in range(150):
        masks = np.stack(ours.env_method("action_masks"))
        np.testing.assert_array_equal(masks, np.stack(theirs.env_method("action_masks")))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        ours.step_async(actions)
        theirs.step_async(actions)
        o1, r1, d1, i1 = ours.step_wait()
        o2, r2, d2, i2 = theirs.step_wait()
        np.testing.assert_array_max_ulp(o1, o2, maxulp=1)
        assert r1.dtype == r2.dtype == np.float32
        np.testing.assert_allclose(r1, r2, rtol=1e-6)
        np.testing.assert_array_equal(d1, d2)
        for a, b in zip(i1, i2):
            _same_info(a, b)
        dones += int(d1.sum())
    assert dones >= 2 * n
    assert ours.has_attr("action_masks") and ours.get_attr("render_mode") == [None] * n
    assert ours.get_attr("window") == [25] * n


def test_validation_in_a_vector_env_gives_the_one_by_one_numbers():
    """The shipped environment's validation windows, a policy that switches (an untrained network) and
    observation normalisation: every metric as run_episodes gives it (to 1e-9), counts exactly."""
    env = make_env(_spec_of("AdaScale/Rpi4-Vision-v4"), "val")
    episodes = pick_episodes(env.unwrapped.evaluation_episodes(), 20)
    train_env = DummyVecEnv([lambda: make_env(_spec_of("AdaScale/Rpi4-Vision-v4"), "train")])
    vecnorm = VecNormalize(train_env, norm_obs=True, norm_reward=False)
    vecnorm.reset()
    for _ in range(50):  # some statistics to normalise with
        vecnorm.step(np.array([0]))
    vecnorm.training = False
    model = MaskablePPO("MlpPolicy", vecnorm, seed=1, device="cpu", policy_kwargs={"net_arch": [16]})
    one_by_one = run_episodes(model_actor(model, vecnorm), env, episodes)
    venv = AdaScaleVectorEnv(len(episodes), "Rpi4-Vision", split="val")
    at_once = run_episodes_vec(model, vecnorm, venv, episodes)
    assert one_by_one["switches_per_episode"] > 1  # the policy switches: the actions matter
    assert set(at_once) == set(one_by_one)
    for k, v in one_by_one.items():
        if k in ("episodes", "switches_per_episode", "ooms_per_episode"):
            assert at_once[k] == v, k
        else:
            assert at_once[k] == pytest.approx(v, rel=1e-9), k
    with pytest.raises(ValueError, match="sub-environments"):
        run_episodes_vec(model, vecnorm, AdaScaleVectorEnv(2, "Rpi4-Vision", split="val"), episodes)
    assert EVAL_SEED == 0


def test_validation_from_start_variants_in_a_vector_env_gives_the_one_by_one_numbers():
    """(trace, start, variant) episodes: the vector environment starts each where run_episodes does."""
    env = make_env(_spec_of("AdaScale/Rpi4-Vision-v4"), "val")
    episodes = validation_episodes(env, pick_episodes(env.unwrapped.evaluation_episodes(), 4), 3)
    model = MaskablePPO("MlpPolicy", DummyVecEnv([lambda: make_env(_spec_of("AdaScale/Rpi4-Vision-v4"), "train")]),
                        seed=2, device="cpu", policy_kwargs={"net_arch": [16]})
    one_by_one = run_episodes(model_actor(model, None), env, episodes)
    at_once = run_episodes_vec(model, None, AdaScaleVectorEnv(len(episodes), "Rpi4-Vision", split="val"), episodes)
    assert one_by_one["episodes"] == at_once["episodes"] == 12
    for k, v in one_by_one.items():
        assert at_once[k] == pytest.approx(v, rel=1e-9), k
    usual = run_episodes(model_actor(model, None), env, [e[:2] for e in episodes])
    assert usual["mean_return"] != pytest.approx(one_by_one["mean_return"])  # the start variants mattered
    with pytest.raises(ValueError, match="all"):
        run_episodes_vec(model, None, AdaScaleVectorEnv(2, "Rpi4-Vision", split="val"), [episodes[0], episodes[0][:2]])


def _spec_of(env_id):
    from adascale_rl.environment.spec import find_spec

    return find_spec(env_id)


def test_a_vectorized_training_run_is_the_single_env_run(tmp_path, monkeypatch):
    env_yaml = _spec_yaml(tmp_path)
    steps = []
    step = AdaScaleVectorEnv.step
    monkeypatch.setattr(AdaScaleVectorEnv, "step", lambda self, a: (steps.append(self.num_envs), step(self, a))[1])
    runs = {}
    for vec in (False, True):
        hp = tmp_path / f"hp-{vec}.yml"
        hp.write_text(yaml.safe_dump({"default": {**TINY, "vectorized": vec}}))
        runs[vec] = train(str(env_yaml), timesteps=384, seed=5, out=tmp_path / f"run-{vec}", hyperparams=hp,
                          eval_freq=128, progress=False)
        # only the vectorized run steps vector environments: the training one (n_envs 2) and validation's (one
        # sub-environment per validation window)
        assert set(steps) == ({2, len(pick_episodes(make_env(_spec_of(str(env_yaml)), "val").unwrapped
                                                    .evaluation_episodes(), 20))} if vec else set())
    cfg = yaml.safe_load((runs[True] / "config.yml").read_text())
    assert cfg["hyperparams"]["vectorized"] is True
    assert (runs[True] / "evaluations.csv").read_text() == (runs[False] / "evaluations.csv").read_text()
    assert len((runs[True] / "evaluations.csv").read_text().splitlines()) == 5  # header, step 0, 3 validations


def test_the_recipe_key_is_a_boolean_and_the_shipped_recipes_use_the_vector_env():
    assert parse({**TINY, "vectorized": True}).vectorized is True
    assert parse(dict(TINY)).vectorized is False
    with pytest.raises(HyperparamsError, match="vectorized must be true or false"):
        parse({**TINY, "vectorized": "yes"})
    root = Path(__file__).resolve().parents[2] / "agents" / "hyperparams"
    for name in ("ppo.yml", "ppo-noprior.yml"):
        assert load_recipe("AdaScale/Rpi4-Vision-v4", "Rpi4-Vision", root / name).vectorized is True
