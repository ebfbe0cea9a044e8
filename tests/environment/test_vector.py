"""The native vector environment against N single environments (gymnasium's SyncVectorEnv).

The acceptance test of the vector environment: on the same seeds and the same actions, over
whole episodes and the resets between them, it gives what ``num_envs`` single environments
give. Tolerances, stated once (``assert_same_step``):

* terminations, truncations, the action masks, the ``info`` keys and their ``_key`` masks,
  and every discrete ``info`` value (variant, switched, oom, freq_mhz, mem_mb, trace, start):
  exactly;
* rewards and the other ``info`` numbers: relative 1e-9 (the single environment's step
  inlines the model in scalar Python, the vector one runs the batched model in numpy, whose
  exp/log/pow may differ from math's by an ulp; measured, the largest difference is ~1e-15);
* observations (float32): within one float32 ulp of each other, element by element, and
  equal after the resets (the first observation is computed by the same scalar code).
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import adascale_rl  # noqa: F401  (registers the ids)
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.registration import registered_specs
from adascale_rl.environment.vector import RESET_KEYS, STEP_KEYS, AdaScaleVectorEnv
from _envdata import LADDER, constant_trace, write_env
from _specs import copy_of_device

SHIPPED = [s.id for s in registered_specs()]
EXACT = {"variant", "switched", "oom", "freq_mhz", "mem_mb", "trace", "start", "action_mask", "deadline_ms",
         "bg_runnable", "accuracy"}


def rough_env(tmp_path, device: str = "pixel4"):
    """A fixture environment where everything happens: traces of different lengths (one shorter than the
    window, so episodes end at different steps), memory tight enough for masked switches and OOM kills,
    the battery saver (on battery, low charge), clock caps, hot ambient (throttling), zero request rates."""
    rng = np.random.default_rng(7)

    def trace(n):
        d = constant_trace(n)
        d["bg_cpu_util"] = rng.uniform(0, 1, n)
        d["bg_runnable"] = rng.choice([0.0, 1.0, 3.0, 9.0], n)
        d["mem_avail_mb"] = rng.choice([70.0, 95.0, 130.0, 2000.0], n)
        d["freq_cap_mhz"] = rng.choice([1000.0, 1500.0, 2400.0], n)
        d["ambient_temp_c"] = rng.uniform(20, 45, n)
        d["battery_pct"] = np.linspace(30, 2, n)
        d["plugged"] = (rng.random(n) < 0.3).astype(float)
        d["request_rate_hz"] = rng.choice([0.0, 2.0, 10.0, 30.0, 200.0], n)
        d["deadline_ms"] = rng.choice([10.0, 60.0, 150.0, 400.0], n)
        return d

    train = {f"t{i}": trace(n) for i, n in enumerate((23, 61, 90, 47, 130))}
    return write_env(tmp_path, device=device, variants=LADDER, train=train, test={"e0": trace(60)}, steps=40)


def assert_close_obs(got, want, exact=False):
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_array_max_ulp(got, want, maxulp=1)


def assert_same_info(got: dict, want: dict):
    assert set(got) == set(want), set(got) ^ set(want)
    for k, w in want.items():
        g = got[k]
        if isinstance(w, dict):
            assert_same_info(g, w)
            continue
        if k.startswith("_"):
            np.testing.assert_array_equal(g, w, err_msg=k)
            continue
        mask = want.get(f"_{k}")
        if k == "final_obs":
            for a, b in zip(g[mask], w[mask]):
                assert_close_obs(a, b)
            continue
        assert g.shape == w.shape, k
        if w.dtype == object or k in EXACT or w.dtype == bool:
            np.testing.assert_array_equal(g, w, err_msg=k)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=k)


def play(vec, sync, seed, steps, rng, masked_share=0.05):
    """Reset both with ``seed``, then ``steps`` random actions (valid ones, plus a few masked ones: the
    environment carries them out); compare everything after each call. Returns the episode ends seen."""
    o1, i1 = vec.reset(seed=seed)
    o2, i2 = sync.reset(seed=seed)
    assert_close_obs(o1, o2, exact=True)
    assert_same_info(i1, i2)
    ends = 0
    n_actions = vec.single_action_space.n
    for _ in range(steps):
        masks = vec.action_masks()
        np.testing.assert_array_equal(masks, np.stack([e.unwrapped.action_masks() for e in sync.envs]))
        actions = np.array([rng.choice(np.flatnonzero(m)) if rng.random() > masked_share
                            else rng.integers(n_actions) for m in masks])
        o1, r1, te1, tr1, i1 = vec.step(actions)
        o2, r2, te2, tr2, i2 = sync.step(actions)
        np.testing.assert_array_equal(te1, te2)
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_allclose(r1, r2, rtol=1e-9, atol=1e-12)
        assert r1.dtype == np.float64
        assert_close_obs(o1, o2)
        assert_same_info(i1, i2)
        ends += int((te1 | tr1).sum())
    return ends


@pytest.mark.parametrize("env_id", SHIPPED)
def test_the_vector_env_is_n_single_envs_on_every_shipped_id(env_id):
    n = 4
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    assert isinstance(vec, AdaScaleVectorEnv)
    sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")
    window = vec.window
    # two whole episodes and the start of a third (train windows are full length here: all end together)
    ends = play(vec, sync, seed=11, steps=2 * window + 3, rng=np.random.default_rng(0))
    assert ends >= 2 * n
    # then every sub-environment goes on from its own generator (reset without a seed)
    o1, _ = vec.reset()
    o2, _ = sync.reset()
    assert_close_obs(o1, o2, exact=True)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("device", ["pixel4", "rpi4"])
def test_the_vector_env_is_n_single_envs_where_everything_happens(tmp_path, mode, device):
    spec = rough_env(tmp_path, device)
    app = {}
    if device == "pixel4":  # on a host 1.6x slower than its catalog with a larger wake-up cost than the app's model
        dev = copy_of_device(tmp_path / "devices", device, service_scale=1.6, idle_wake_ms=0.9)
        spec = dataclasses.replace(spec, device=str(dev))
        app = {"app_device": device}
    else:  # a host speed drawn per episode (world only), from each sub-environment's own generator
        app = {"host_speed": [0.8, 2.0]}
    n = 7
    vec = AdaScaleVectorEnv(n, spec, autoreset_mode=mode, reward="latency-critical", **app)
    sync = SyncVectorEnv([lambda: AdaScaleEnv(spec, reward="latency-critical", **app) for _ in range(n)],
                         autoreset_mode=mode)
    if "app_device" in app:  # the app's model is the shipped preset's, the world the copy's
        assert vec._app_table.sched != vec.physics.table.sched
    ends = play(vec, sync, seed=3, steps=300, rng=np.random.default_rng(1), masked_share=0.2)
    assert ends > 3 * n
    seen = {"oom": False, "switched": False, "saver": False}
    # the rough environment reaches what it is for (checked on a fresh run)
    vec.reset(seed=5)
    rng = np.random.default_rng(2)
    for _ in range(200):
        _, _, _, _, info = vec.step(rng.integers(vec.single_action_space.n, size=n))
        if "oom" not in info:  # every sub-environment restarted at this step
            continue
        seen["oom"] |= bool(info["oom"].any())
        seen["switched"] |= bool(info["switched"].any())
        if device == "pixel4":
            seen["saver"] |= bool((info["freq_mhz"][info["_freq_mhz"]] <= vec.physics.device.saver_cap_mhz).any())
    assert seen["oom"] and seen["switched"] and (seen["saver"] or device != "pixel4")


def test_disabled_autoreset_and_partial_resets_match_the_single_envs(tmp_path):
    spec = rough_env(tmp_path)
    n = 5
    vec = AdaScaleVectorEnv(n, spec, autoreset_mode="Disabled")
    sync = SyncVectorEnv([lambda: AdaScaleEnv(spec) for _ in range(n)], autoreset_mode=AutoresetMode.DISABLED)
    rng = np.random.default_rng(4)
    vec.reset(seed=[10, 11, None, 13, 14])
    sync.reset(seed=[10, 11, None, 13, 14])  # None: entropy; its obs differ, so compare the seeded rows only
    for _ in range(150):
        actions = rng.integers(vec.single_action_space.n, size=n)
        o1, r1, te1, tr1, i1 = vec.step(actions)
        o2, r2, te2, tr2, i2 = sync.step(actions)
        seeded = np.array([True, True, False, True, True])
        np.testing.assert_array_max_ulp(o1[seeded], o2[seeded], maxulp=1)
        np.testing.assert_allclose(r1[seeded], r2[seeded], rtol=1e-9)
        np.testing.assert_array_equal(tr1[seeded], tr2[seeded])
        done, done2 = te1 | tr1, te2 | tr2
        np.testing.assert_array_equal(done[seeded], done2[seeded])  # the unseeded row ends when its own trace does
        if done.any():
            with pytest.raises(RuntimeError, match="reset them"):
                vec.step(actions)
            o1, i1 = vec.reset(options={"reset_mask": done})
            np.testing.assert_array_equal(i1["_trace"], done)
            assert set(i1) == {*RESET_KEYS, *(f"_{k}" for k in RESET_KEYS)}
        if done2.any():
            o2, i2 = sync.reset(options={"reset_mask": done2})
        if done.any() or done2.any():
            np.testing.assert_array_equal(o1[seeded & done], o2[seeded & done])


def test_per_env_reset_options_replay_the_single_envs_windows():
    """Validation plays chosen windows at once: options given as sequences go one to each sub-environment."""
    env = gym.make("AdaScale/Rpi4-Vision-v4", split="val")
    windows = env.unwrapped.evaluation_episodes()[:6]
    vec = gym.make_vec("AdaScale/Rpi4-Vision-v4", num_envs=len(windows), split="val")
    traces, starts = [w[0] for w in windows], [w[1] for w in windows]
    obs, info = vec.reset(seed=[100 + j for j in range(len(windows))], options={"trace": traces, "start": starts})
    np.testing.assert_array_equal(info["start"], starts)
    actions = np.zeros(len(windows), dtype=np.int64)
    rewards = []
    for _ in range(env.unwrapped.window):
        obs, r, te, tr, _ = vec.step(actions)
        rewards.append(r)
    assert tr.all()
    for j, (ti, start) in enumerate(windows):
        env.reset(seed=100 + j, options={"trace": ti, "start": start})
        want = [env.step(0)[1] for _ in range(env.unwrapped.window)]
        np.testing.assert_allclose([r[j] for r in rewards], want, rtol=1e-9)


def test_make_vec_defaults_to_the_vector_env_and_checks_its_arguments():
    vec = gym.make_vec("AdaScale/Rpi4-Vision-v4", num_envs=3)
    assert isinstance(vec, AdaScaleVectorEnv) and vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert vec.observation_space.shape == (3, vec.single_observation_space.shape[0])
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.zeros(3, dtype=np.int64))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="outside Discrete"):
        vec.step(np.array([0, 0, vec.single_action_space.n]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="num_envs"):
        AdaScaleVectorEnv(0, "Rpi4-Vision")
    with pytest.raises(ValueError, match="autoreset_mode"):
        AdaScaleVectorEnv(2, "Rpi4-Vision", autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
    with pytest.raises(ValueError, match="one value per sub-environment"):
        vec.reset(options={"trace": [0, 1]})
    # the info keys are the single environment's
    env = gym.make("AdaScale/Rpi4-Vision-v4")
    env.reset(seed=0)
    assert tuple(env.step(0)[4]) == STEP_KEYS
