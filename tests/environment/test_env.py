"""The environment contract: API checks, determinism, pickling, fuzzing, info keys."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import adascale_rl  # noqa: F401  (registers the ids)
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.registration import registered_specs
from adascale_rl.environment.reward import PRESETS, make_reward

IDS = [s.id for s in registered_specs()]
INFO_KEYS = {"accuracy", "effective_accuracy", "latency_ms", "deadline_ms", "energy_mj", "power_w", "mem_mb",
             "miss_rate", "served_frac", "switched", "oom", "temp_c", "freq_mhz", "battery_pct", "variant",
             "reward_accuracy", "reward_miss", "reward_energy", "reward_mem", "reward_switch", "reward_oom",
             "action_mask"}
# Warnings we accept from the checkers, each with its reason:
ALLOWED = (
    # Gymnasium asks for a render_mode to test render(); ours is optional (ansi) and tested below.
    "No render fps was declared",
)


def _rollout(env, seed, steps, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for i in range(steps):
        obs, r, term, trunc, info = env.step(actions[i])
        out.append((obs, r, info["latency_ms"], info["variant"]))
        if term or trunc:
            out.append(env.reset()[0])
    return out


def test_there_is_at_least_one_environment_per_device():
    devices = {s.device for s in registered_specs()}
    assert {"rpi4", "jetson-nano", "pixel4"} <= devices


@pytest.mark.parametrize("env_id", IDS)
def test_registered_env_passes_gymnasium_and_sb3_checkers(env_id):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(gym.make(env_id).unwrapped, warn=True)
    bad = [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED)]
    assert not bad, bad


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_gives_identical_200_step_rollouts(env_id):
    actions = np.random.default_rng(0).integers(0, gym.make(env_id).action_space.n, size=200)
    a = _rollout(gym.make(env_id), 123, 200, actions)
    b = _rollout(gym.make(env_id), 123, 200, actions)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            np.testing.assert_array_equal(x[0], y[0])
            assert x[1:] == y[1:]
        else:
            np.testing.assert_array_equal(x, y)
    c = _rollout(gym.make(env_id), 124, 200, actions)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a[1:], c[1:]) if isinstance(x, tuple) and isinstance(y, tuple))


@pytest.mark.parametrize("spell", [None, 6.0])
def test_noise_does_not_depend_on_the_actions(fixture_spec, spell):
    env = AdaScaleEnv(fixture_spec, split="test", spike_spell_s=spell)
    opts = {"trace": 0, "start": 0, "variant": "tiny"}
    env.reset(seed=7, options=opts)
    noise_a = [n.latency for n in env.episode.noise]
    keep_lat = [env.step(0)[4]["latency_ms"] for _ in range(10)]
    env.reset(seed=7, options=opts)
    assert [n.latency for n in env.episode.noise] == noise_a
    env.step(4)  # a different action path...
    env.reset(seed=7, options=opts)
    assert [env.step(0)[4]["latency_ms"] for _ in range(10)] == keep_lat  # ...does not change the future


@pytest.mark.parametrize("env_id", IDS)
def test_env_pickles_mid_episode_and_continues_identically(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=3)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    a = env.step(1)
    b = clone.step(1)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


@pytest.mark.parametrize("env_id", IDS)
def test_action_fuzz_never_crashes_and_info_is_complete(env_id):
    env = gym.make(env_id)
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=1)
    for _ in range(600):
        obs, r, term, trunc, info = env.step(int(rng.integers(0, env.action_space.n)))
        assert env.observation_space.contains(obs)
        assert np.isfinite(r)
        assert INFO_KEYS <= set(info)
        assert info["action_mask"][0] == 1
        assert r == pytest.approx(sum(info[f"reward_{t}"] for t in ("accuracy", "miss", "energy", "mem", "switch", "oom")))
        if term or trunc:
            obs, info = env.reset()


def test_bad_actions_and_options_are_refused_clearly(fixture_spec):
    env = AdaScaleEnv(fixture_spec)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(99)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"trace_index": 0})
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"trace": 99})
    with pytest.raises(KeyError, match="no variant"):
        env.reset(options={"variant": "nope"})


def test_episode_truncates_at_the_window_and_evaluation_covers_the_split(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test")
    assert env.evaluation_episodes() == [(0, 0), (0, 50)]
    env.reset(seed=0, options={"trace": 0, "start": 50})
    for i in range(50):
        *_, trunc, _ = env.step(0)
        assert trunc == (i == 49)


def test_validation_split_is_held_out_of_train(fixture_spec):
    train = AdaScaleEnv(fixture_spec, split="train")
    val = AdaScaleEnv(fixture_spec, split="val")
    assert len(train.traces) == 3 and len(val.traces) == 1
    assert val.traces[0].name not in {t.name for t in train.traces}


def test_reward_presets_and_overrides():
    assert set(PRESETS) == {"balanced", "latency-critical", "energy-saver", "accuracy-first"}
    r = make_reward({"preset": "energy-saver", "w_switch": 0.5})
    assert r.w_switch == 0.5 and r.w_energy == PRESETS["energy-saver"].w_energy
    with pytest.raises(ValueError, match="unknown reward preset"):
        make_reward("fast")
    with pytest.raises(ValueError, match="unknown reward weight"):
        make_reward({"w_speed": 1})


def test_observation_is_one_step_stale_and_hides_the_simulator(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test")
    obs, _ = env.reset(seed=0, options={"trace": 0, "start": 0, "variant": "tiny"})
    names = env.encoder.names
    assert not any(n in names for n in ("noise", "contention", "temp_c_true"))
    obs, _, _, _, info = env.step(0)
    assert obs[names.index("clock_frac")] == pytest.approx(info["freq_mhz"] / env.device.f_max_mhz)
    assert obs[names.index("loaded=tiny")] == 1.0


def test_render_ansi(fixture_spec):
    env = AdaScaleEnv(fixture_spec, render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    assert "MHz" in env.render()



def test_small_datasets_hold_out_the_end_of_each_train_trace(tmp_path):
    from _envdata import constant_trace, write_env

    train = {f"t{i}": constant_trace(100, request_rate_hz=8, deadline_ms=150) for i in range(2)}
    spec = write_env(tmp_path, train=train)
    tr = AdaScaleEnv(spec, split="train")
    val = AdaScaleEnv(spec, split="val")
    assert [len(e) for e in tr.exo] == [80, 80] and [len(e) for e in val.exo] == [20, 20]


@pytest.mark.parametrize("service_scale", [1.0, 1.8])
def test_slowdown_average_is_measured_latency_over_the_models_prediction(fixture_spec, tmp_path, service_scale):
    """Also on a host 1.8x slower than the catalog (a preset's ``service_scale``): the world serves slower, the
    app's model (the table its prediction reads) is still the catalog's, so the slow-down it measures grows."""
    import dataclasses
    import math

    from adascale_rl.device import model
    from adascale_rl.environment.env import SLOWDOWN_EMA_WEIGHT
    from _specs import copy_of_device

    spec = fixture_spec
    if service_scale != 1.0:
        dev = copy_of_device(tmp_path / "devices", fixture_spec.device, service_scale=service_scale)
        spec = dataclasses.replace(fixture_spec, device=str(dev))
    env = AdaScaleEnv(spec, split="test")
    assert env.physics.service_scale == service_scale
    env.reset(seed=4, options={"trace": 0, "start": 0, "variant": "mid"})
    t = env.app_physics.table
    ema = 0.0
    for _ in range(20):
        rate = env.episode.exo[env.t].request_rate_hz  # the app's own rate for the coming interval
        obs, _, _, _, info = env.step(0)
        i = env.catalog.index(info["variant"])
        predicted = model.expected_latency_ms(t, t.arrays(), freq_mhz=info["freq_mhz"],
                                              bg_runnable=info["bg_runnable"], rate_hz=rate,
                                              deadline_ms=info["deadline_ms"])[i]
        ema += SLOWDOWN_EMA_WEIGHT * (math.log2(info["latency_ms"] / predicted) - ema)
        assert env.encoder.decode(obs)["slowdown_ema_log2"] == pytest.approx(ema, abs=1e-5)
    # the table the app predicts with is the catalog's whatever the host; the world's service is scaled
    assert np.array_equal(t.latency_ms, [v.latency_ms for v in env.catalog.variants])
    assert info["service_ms"] > 0 and env.physics.world.latency_ms[i] == pytest.approx(service_scale * t.latency_ms[i])
    if service_scale != 1.0:  # 20 intervals of an average that weights the newest by SLOWDOWN_EMA_WEIGHT
        assert ema > 0.5 * math.log2(service_scale)


def test_an_app_that_holds_other_constants_than_the_world_observes_against_its_own(fixture_spec, tmp_path):
    """``app_device``: the world (its preset: a host 1.3x slower, a larger wake-up cost) plays the same; only the
    app's prediction, so the slow-down it observes, comes from the app's preset."""
    import dataclasses
    import math

    from adascale_rl.device import model
    from adascale_rl.environment.env import SLOWDOWN_EMA_WEIGHT
    from _specs import copy_of_device

    dev = copy_of_device(tmp_path / "devices", fixture_spec.device, service_scale=1.3, idle_wake_ms=1.5)
    world = dataclasses.replace(fixture_spec, device=str(dev))
    mine = AdaScaleEnv(world, split="test", app_device=fixture_spec.device)
    theirs = AdaScaleEnv(world, split="test")
    assert mine.app_device.idle_wake_ms != theirs.app_device.idle_wake_ms == 1.5
    app = mine.app_physics.table
    i_ema = mine.encoder.names.index("slowdown_ema_log")
    for env in (mine, theirs):
        env.reset(seed=4, options={"trace": 0, "start": 0, "variant": "mid"})
    ema = 0.0
    for k in range(15):
        rate = mine.episode.exo[mine.t].request_rate_hz
        a = (0, 2, 0, 3, 0)[k % 5]
        o1, r1, _, _, i1 = mine.step(a)
        o2, r2, _, _, i2 = theirs.step(a)
        assert r1 == r2 and i1["latency_ms"] == i2["latency_ms"] and i1["variant"] == i2["variant"]
        predicted = model.expected_latency_ms(app, app.arrays(), freq_mhz=i1["freq_mhz"], bg_runnable=i1["bg_runnable"],
                                              rate_hz=rate, deadline_ms=i1["deadline_ms"])[mine.catalog.index(i1["variant"])]
        ema += SLOWDOWN_EMA_WEIGHT * (math.log2(i1["latency_ms"] / predicted) - ema)
        assert mine.encoder.decode(o1)["slowdown_ema_log2"] == pytest.approx(ema, abs=1e-5)
    assert o1[i_ema] > o2[i_ema]  # the app that expects the faster wake-up sees more of a slow-down
    other = copy_of_device(tmp_path / "other", "pixel4")
    with pytest.raises(ValueError, match="app_device must describe the world's device"):
        AdaScaleEnv(world, split="test", app_device=str(other))


def test_a_host_speed_drawn_per_episode_scales_its_whole_noise_and_nothing_else(fixture_spec):
    """``host_speed=(lo, hi)``: one log-uniform draw per episode, after every other draw (so the episode's trace,
    start, variant and noise are those of the same seed without it), multiplying every interval's latency noise."""
    plain, slow = AdaScaleEnv(fixture_spec), AdaScaleEnv(fixture_spec, host_speed=[1.2, 2.0])
    speeds = []
    for seed in range(8):
        plain.reset(seed=seed)
        slow.reset(seed=seed)
        a, b = plain.episode, slow.episode
        assert (a.trace, a.start, a.state0) == (b.trace, b.start, b.state0)
        ratio = np.array([y.latency / x.latency for x, y in zip(a.noise, b.noise)])
        assert np.allclose(ratio, ratio[0], rtol=1e-12) and 1.2 <= ratio[0] <= 2.0
        speeds.append(ratio[0])
    assert len(set(np.round(speeds, 9))) == 8  # a new speed each episode
    for bad in ([2.0, 1.0], [0.0, 1.0], [1.0], "fast", [1.0, float("inf")]):
        with pytest.raises(ValueError, match="host_speed"):
            AdaScaleEnv(fixture_spec, host_speed=bad)


@pytest.mark.parametrize("env_id", IDS)
def test_every_observation_field_is_computed_from_what_a_device_measures(env_id):
    """Rebuild each observation from the context the app measured (the trace row of the interval, the clock,
    temperature and battery it read), the feedback it measured (``info``) and the catalog only: a field computed
    from a hidden draw (the noise, the contention factor) would not come out the same."""
    import math

    from adascale_rl.device import model
    from adascale_rl.environment.env import SLOWDOWN_EMA_WEIGHT
    from adascale_rl.environment.observation import Feedback

    env = gym.make(env_id, split="test").unwrapped
    env.reset(seed=11, options={"trace": 0, "start": 0})
    t = env.physics.table
    rng = np.random.default_rng(0)
    ema = 0.0
    for _ in range(60):
        exo = env.episode.exo[env.t]
        nxt = env.episode.exo[min(env.t + 1, len(env.episode) - 1)]
        obs, _, _, trunc, info = env.step(int(rng.integers(env.action_space.n)) if rng.random() < 0.1 else 0)
        i = env.catalog.index(info["variant"])
        if not info["oom"] and info["served_frac"] > 0:
            pred = model.expected_latency_ms(t, t.arrays(), freq_mhz=info["freq_mhz"], bg_runnable=exo.bg_runnable,
                                             rate_hz=exo.request_rate_hz, deadline_ms=exo.deadline_ms)[i]
            ema += SLOWDOWN_EMA_WEIGHT * (math.log2(info["latency_ms"] / pred) - ema)
        reading = {"freq_mhz": info["freq_mhz"], "bg_cpu_util": exo.bg_cpu_util, "bg_runnable": exo.bg_runnable,
                   "mem_avail_mb": exo.mem_avail_mb,
                   "battery_pct": info["battery_pct"] if env.device.has_battery else None, "plugged": exo.plugged,
                   "temp_c": info["temp_c"] if env.device.temp_sensor else None,
                   "request_rate_hz": nxt.request_rate_hz if not trunc else exo.request_rate_hz,
                   "deadline_ms": nxt.deadline_ms if not trunc else exo.deadline_ms}
        fb = Feedback(info["latency_ms"], i, info["miss_rate"], info["energy_mj"] / 1000.0, info["switched"],
                      info["oom"], ema)
        np.testing.assert_allclose(env.encoder.encode(reading, i, fb), obs, rtol=1e-6, atol=1e-6)
        if trunc:
            break


def test_action_mask_is_the_memory_rule_exactly_and_handed_out_as_copies(tmp_path):
    import json
    from pathlib import Path

    from _envdata import LADDER, make_catalog_doc, write_env

    spec = write_env(tmp_path)
    # two variants with the same peak; the runtime overhead is held once while switching
    doc = make_catalog_doc(LADDER + [{"id": "tiny2", "accuracy": 0.4, "latency_ms": 4.0, "peak_mem_mb": 15.0}])
    doc["runtime_overhead_mb"] = {"value": 10.0, "derived": "test"}
    Path(spec.catalog).write_text(json.dumps(doc))
    env = AdaScaleEnv(spec, split="test")
    env.reset(seed=0)
    peak = np.array([v.peak_mem_mb for v in env.catalog.variants])
    n = len(peak)
    for killed in (False, True):
        env._state = env._state._replace(killed=killed)
        for loaded in range(n):
            resident = 0.0 if killed else peak[loaded] - 10.0
            edges = peak + resident  # exactly at each variant's limit, and one ulp either side
            for mem in [0.0, 1e9, float("nan"), *edges, *np.nextafter(edges, -np.inf), *np.nextafter(edges, np.inf)]:
                env._update_mask(loaded, float(mem))
                want = np.ones(n + 1, dtype=np.int8)
                want[1:] = (peak + resident) <= mem
                want[loaded + 1] = 1
                got = env.action_masks()
                assert got.dtype == bool
                np.testing.assert_array_equal(got, want.astype(bool), err_msg=f"{killed=} {loaded=} {mem=}")
    env.reset(seed=0)
    _, _, _, _, a = env.step(0)
    a["action_mask"][:] = 0  # a caller may write into the mask it was given...
    _, _, _, _, b = env.step(0)
    assert b["action_mask"][0] == 1 and env.action_masks()[0]  # ...without touching later ones
    assert b["action_mask"].dtype == np.int8 and b["action_mask"].flags.writeable


def test_a_folder_in_the_working_directory_does_not_shadow_a_shipped_dataset(tmp_path, monkeypatch):
    import yaml

    from adascale_rl import paths
    from adascale_rl.environment.spec import find_spec

    shipped = paths.traces_dir() / "rpi4-sim-v2"
    (tmp_path / "rpi4-sim-v2").mkdir()  # e.g. left over from `adascale-rl synth --out rpi4-sim-v2`
    monkeypatch.chdir(tmp_path)
    assert find_spec("Rpi4-Vision").dataset_path() == shipped.resolve()
    # a spec file's relative dataset is looked up next to the file first
    here = tmp_path / "mine"
    (here / "rpi4-sim-v2").mkdir(parents=True)
    doc = yaml.safe_load(find_spec("Rpi4-Vision").path.read_text())
    (here / "Mine.yaml").write_text(yaml.safe_dump({**doc, "id": "AdaScale/Mine-v4"}))
    assert find_spec(str(here / "Mine.yaml")).dataset_path() == (here / "rpi4-sim-v2").resolve()
    (here / "Bad.yaml").write_text(yaml.safe_dump({**doc, "id": "AdaScale/Bad-v4", "dataset": "nope-v1"}))
    with pytest.raises(FileNotFoundError, match="neither next to the spec"):
        find_spec(str(here / "Bad.yaml")).dataset_path()


def test_val_rule_describes_what_split_traces_does(tmp_path):
    from _envdata import constant_trace, write_env

    from adascale_rl.environment.env import split_traces, val_rule

    (tmp_path / "many").mkdir()
    (tmp_path / "few").mkdir()
    many = AdaScaleEnv(write_env(tmp_path / "many", train={f"t{i}": constant_trace(50, request_rate_hz=8, deadline_ms=150) for i in range(4)}))
    few = AdaScaleEnv(write_env(tmp_path / "few", train={f"t{i}": constant_trace(50, request_rate_hz=8, deadline_ms=150) for i in range(2)}))
    assert val_rule(many.dataset) == "every 4th train trace"
    assert [t.name for t in split_traces(many.dataset, "val")] == [many.dataset.train[3].name]
    assert val_rule(few.dataset) == "the last fifth of each train trace"
    assert [len(t) for t in split_traces(few.dataset, "val")] == [10, 10]


def test_independent_spikes_are_the_documented_draws(fixture_spec):
    """Without ``spike_spell_s`` the noise is log-normal times an independent spike per interval
    (the draws every shipped controller and figure were made with: they must not change)."""
    from adascale_rl.environment.env import SPIKE_RANGE

    env = AdaScaleEnv(fixture_spec, split="test", latency_sigma=0.1, spike_prob=0.2)
    got = [n.latency for n in env.draw_noise(np.random.default_rng(3), 500)]
    rng = np.random.default_rng(3)
    want = np.exp(0.1 * rng.standard_normal(500))
    spikes = rng.random(500) < 0.2
    want = want * np.where(spikes, rng.uniform(*SPIKE_RANGE, size=500), 1.0)
    assert got == want.tolist()
    # and pinned: the first draws of a 6-interval episode, as the code before spike_spell_s gave them
    six = [n.latency for n in env.draw_noise(np.random.default_rng(3), 6)]
    assert six == pytest.approx([1.226410870322, 1.616178811186, 1.042696227371, 2.32069302993, 0.955744243721,
                                 0.978671033102], abs=1e-11)


def _spells(factors: np.ndarray) -> list[np.ndarray]:
    on = np.r_[0, (factors > 1.0).astype(int), 0]
    edges = np.diff(on)
    return [factors[a:b] for a, b in zip(np.where(edges == 1)[0], np.where(edges == -1)[0])]


@pytest.mark.parametrize("spell_s", [1.0, 8.0, 30.0])
def test_spike_spells_have_the_asked_mean_length_and_fraction(fixture_spec, spell_s):
    from adascale_rl.environment.env import SPIKE_RANGE

    env = AdaScaleEnv(fixture_spec, split="test", latency_sigma=0.0, spike_prob=0.05, spike_spell_s=spell_s)
    x = np.array([n.latency for n in env.draw_noise(np.random.default_rng(11), 400_000)])
    assert np.all((x == 1.0) | ((x >= SPIKE_RANGE[0]) & (x <= SPIKE_RANGE[1])))
    assert abs((x > 1.0).mean() - 0.05) < 0.005
    spells = _spells(x)
    lengths = np.array([len(s) for s in spells])
    assert abs(lengths.mean() - spell_s) < 0.08 * spell_s
    # a spell keeps the factor it started with (a new spell cannot start in the interval the
    # last one ended, so spells never touch)
    assert all(np.all(s == s[0]) for s in spells)
    # and spikes persist: the chance the next interval is in a spike, given this one is
    on = x > 1.0
    assert abs(on[1:][on[:-1]].mean() - (1.0 - 1.0 / spell_s)) < 0.02


@pytest.mark.parametrize("prob, spell_s", [(0.8, 4.0), (0.8, 10.0), (0.5, 1.0)])
def test_spike_fraction_holds_for_a_large_spike_prob(fixture_spec, prob, spell_s):
    env = AdaScaleEnv(fixture_spec, split="test", latency_sigma=0.0, spike_prob=prob, spike_spell_s=spell_s)
    x = np.array([n.latency for n in env.draw_noise(np.random.default_rng(2), 200_000)])
    assert abs((x > 1.0).mean() - prob) < 0.02


def test_the_first_interval_is_in_a_spike_with_the_stationary_probability(fixture_spec):
    env = AdaScaleEnv(fixture_spec, split="test", latency_sigma=0.0, spike_prob=0.2, spike_spell_s=8.0)
    rng = np.random.default_rng(9)
    first = np.array([env.draw_noise(rng, 1)[0].latency > 1.0 for _ in range(20_000)])
    assert abs(first.mean() - 0.2) < 0.015


def test_spike_spells_keep_the_interval_length_in_seconds(fixture_spec):
    """The mean spell is in seconds: at 2 s intervals an 8 s spell lasts 4 intervals."""
    env = AdaScaleEnv(fixture_spec, split="test", period_s=2.0, latency_sigma=0.0, spike_prob=0.05,
                      spike_spell_s=8.0)
    x = np.array([n.latency for n in env.draw_noise(np.random.default_rng(5), 200_000)])
    assert abs(np.mean([len(s) for s in _spells(x)]) - 4.0) < 0.3


@pytest.mark.parametrize("kwargs, match", [
    ({"spike_spell_s": 0.5}, "spike_spell_s must be at least 1 s"),
    ({"spike_spell_s": float("nan")}, "spike_spell_s must be a finite number"),
    ({"spike_spell_s": [1, 2]}, "spike_spell_s must be a finite number"),
    ({"spike_spell_s": True}, "spike_spell_s must be a finite number"),
    ({"spike_spell_s": "abc"}, "spike_spell_s must be a finite number"),
    ({"spike_spell_s": 5.0, "spike_prob": 1.0}, "spike_prob < 1"),
    ({"spike_spell_s": 2.0, "spike_prob": 0.8}, "spike_spell_s must be at least 4 s"),
    ({"spike_prob": -0.1}, "spike_prob must be a number in"),
    ({"spike_prob": 1.5}, "spike_prob must be a number in"),
    ({"spike_prob": None}, "spike_prob must be a finite number"),
    ({"latency_sigma": -0.1}, "latency_sigma"),
    ({"latency_sigma": None}, "latency_sigma must be a finite number"),
    ({"period_s": 0}, "period_s must be a number of seconds > 0"),
    ({"max_episode_steps": -5}, "max_episode_steps must be a whole number >= 1"),
    ({"max_episode_steps": 2.5}, "max_episode_steps must be a whole number >= 1"),
    ({"random_start_variant": "abc"}, "random_start_variant must be true, false or None"),
    ({"max_episode_steps": True}, "max_episode_steps must be a whole number >= 1"),
    ({"max_episode_steps": 0}, "max_episode_steps must be a whole number >= 1"),
    ({"max_episode_steps": "300"}, "max_episode_steps must be a whole number >= 1"),
    ({"max_episode_steps": float("inf")}, "max_episode_steps must be a whole number >= 1"),
    ({"latency_sigma": 10 ** 400}, "latency_sigma must be a finite number"),
])
def test_bad_noise_arguments_are_refused(fixture_spec, kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaScaleEnv(fixture_spec, split="test", **kwargs)


def test_spike_spells_pass_the_api_checkers():
    env = gym.make(IDS[0], spike_spell_s=10.0)
    with warnings.catch_warnings(record=True):
        gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("steps", [2.5, True, 0, "300", [3], float("inf")])
def test_the_trainers_environment_refuses_a_bad_window_too(fixture_spec, steps):
    from adascale_rl.policies.ppo import make_env

    with pytest.raises(ValueError, match="max_episode_steps must be a whole number >= 1"):
        make_env(fixture_spec, "train", {"max_episode_steps": steps})


@pytest.mark.parametrize("steps", [30, 30.0, np.int64(30), np.float64(30.0)])
def test_a_whole_window_in_any_number_type_is_taken(fixture_spec, steps):
    from adascale_rl.policies.ppo import make_env

    env = make_env(fixture_spec, "train", {"max_episode_steps": steps})
    assert env.unwrapped.window == 30 and env.spec.max_episode_steps == 30
    assert AdaScaleEnv(fixture_spec, max_episode_steps=steps).window == 30


def test_a_device_without_a_temperature_sensor_observes_it_missing_as_its_selector_does():
    """Local-Digits' host (a VM) has no readable chip temperature: the selector there encodes it as missing, so
    the simulator must too (a network trained on a temperature it never sees live meets an unseen input)."""
    from adascale_rl.environment.observation import INDEX

    for env_id, sensor in (("AdaScale/Local-Digits-v4", False), ("AdaScale/Rpi4-Vision-v4", True)):
        env = gym.make(env_id, split="test").unwrapped
        obs, _ = env.reset(seed=0)
        assert env.device.temp_sensor is sensor
        for _ in range(3):
            assert obs[INDEX["temp_missing"]] == (0.0 if sensor else 1.0), env_id
            if not sensor:
                assert obs[INDEX["temp_headroom"]] == 1.0, env_id  # the encoder's value for "no sensor"
            obs, *_ = env.step(0)


def test_world_constants_move_the_worlds_host_and_leave_the_apps_model_at_the_presets(fixture_spec):
    """``world_constants``: the world serves with the given wake-up cost (a longer response, the same trace and
    noise), while the app's model, so its prediction and the slow-down it observes, keeps the spec's preset."""
    plain = AdaScaleEnv(fixture_spec, split="test")
    woken = AdaScaleEnv(fixture_spec, split="test", world_constants={"idle_wake_ms": 1.8, "idle_wake_per_ms": 0.0})
    assert woken.device.idle_wake_ms == 1.8 and woken.physics.table.sched.idle_wake_ms == 1.8
    assert woken.app_device == plain.device and woken.app_physics.table.to_dict() == plain.physics.table.to_dict()
    i_ema = woken.encoder.names.index("slowdown_ema_log")
    for env in (plain, woken):
        env.reset(seed=3, options={"trace": 0, "start": 0, "variant": "mid"})
    longer = 0
    for _ in range(12):
        o1, _, _, _, i1 = plain.step(0)
        o2, _, _, _, i2 = woken.step(0)
        assert i1["bg_runnable"] == i2["bg_runnable"] and i1["variant"] == i2["variant"]
        longer += i2["latency_ms"] > i1["latency_ms"]
    assert longer >= 10 and o2[i_ema] > o1[i_ema]  # the app sees the world's longer wake-ups as a slow-down
    for bad in ({"cores": 4}, {"idle_wake_ms": -1.0}):
        with pytest.raises(ValueError, match="world_constants"):
            AdaScaleEnv(fixture_spec, world_constants=bad)


def test_variant_service_scale_slows_the_named_variants_in_the_world_only(fixture_spec):
    """``variant_service_scale``: the world serves the named variant that many times slower than its catalog latency
    (the others at the preset's speed), its work's energy alike; the app's model keeps the catalog's."""
    plain = AdaScaleEnv(fixture_spec, split="test")
    ids = plain.catalog.ids
    uneven = AdaScaleEnv(fixture_spec, split="test", variant_service_scale={ids[0]: 2.0})
    w, p = uneven.physics.world_arrays, plain.physics.world_arrays
    assert w["latency_ms"][0] == pytest.approx(2.0 * p["latency_ms"][0]) and w["energy_mj"][0] == pytest.approx(
        2.0 * p["energy_mj"][0])
    assert np.array_equal(w["latency_ms"][1:], p["latency_ms"][1:])
    assert uneven.app_physics.table.to_dict() == plain.app_physics.table.to_dict()
    for env in (plain, uneven):
        env.reset(seed=3, options={"trace": 0, "start": 0, "variant": ids[0]})
    _, _, _, _, i1 = plain.step(0)
    _, _, _, _, i2 = uneven.step(0)
    assert i2["latency_ms"] > 1.5 * i1["latency_ms"]
    for bad, words in (({"nope": 1.0}, "not a variant"), ({ids[0]: 0.0}, "must be a number"),
                       ({ids[0]: True}, "must be a number"), ([1.0], "mapping")):
        with pytest.raises(ValueError, match=words):
            AdaScaleEnv(fixture_spec, variant_service_scale=bad)


def test_variant_wake_scale_gives_the_named_variants_their_own_wake_up_cost_in_the_world_only(fixture_spec):
    """``variant_wake_scale``: the world's wake-up cost of the named variant is that many times the scheduler's line
    (its service and the others as they were); the app's model keeps the line; bad values are one-line errors."""
    plain = AdaScaleEnv(fixture_spec, split="test")
    ids = plain.catalog.ids
    dear = AdaScaleEnv(fixture_spec, split="test", variant_wake_scale={ids[-1]: 4.0})
    w = dear.physics.world_arrays
    assert w["wake_scale"][-1] == 4.0 and np.all(w["wake_scale"][:-1] == 1.0)
    np.testing.assert_array_equal(w["latency_ms"], plain.physics.world_arrays["latency_ms"])
    assert dear.app_physics.table.to_dict() == plain.app_physics.table.to_dict()
    for bad, words in (({"nope": 1.0}, "not a variant"), ({ids[0]: 0.0}, r"must be a number in \[0.1, 10\]"),
                       ({ids[0]: float("nan")}, "must be a number"), ({ids[0]: True}, "must be a number"),
                       ((1.0,), "mapping")):
        with pytest.raises(ValueError, match=words):
            AdaScaleEnv(fixture_spec, variant_wake_scale=bad)


@pytest.mark.parametrize("kwargs", [{}, {"spike_spell_s": 8.0}, {"latency_sigma": 0.2, "spike_prob": 0.1},
                                    {"host_speed": (0.8, 1.6)}])
def test_noise_quadrature_has_the_moments_and_quantiles_of_the_draws(fixture_spec, kwargs):
    """What benchmarks/contention.py predicts a pooled measurement with: the quadrature of one interval's latency
    factor has the mean, spread and tail of the factors the environment draws (spells keep the marginal)."""
    from adascale_rl.environment.env import noise_quadrature

    env = AdaScaleEnv(fixture_spec, split="test", **kwargs)
    rng = np.random.default_rng(5)
    x = np.concatenate([env.noise_factors(rng, 300) * (np.exp(rng.uniform(*np.log(kwargs["host_speed"])))
                                                       if "host_speed" in kwargs else 1.0)
                        for _ in range(2000)])
    f, w = noise_quadrature(env.latency_sigma, env.spike_prob, kwargs.get("host_speed"))
    assert abs(w.sum() - 1.0) < 1e-12 and np.all(w > 0)
    mean = float(np.dot(f, w))
    assert abs(mean / x.mean() - 1.0) < 0.01
    assert abs(np.sqrt(np.dot((f - mean) ** 2, w)) / x.std() - 1.0) < 0.05
    # as the benchmark uses it: each point smoothed by the frame jitter (log-normal, sigma 0.1); its median and p95
    # within the draws' (times the same jitter) 1 point around them
    from math import erf, sqrt

    def cdf(v: float) -> float:
        return float(np.dot(w, [0.5 * (1.0 + erf((np.log(v) - np.log(fi)) / (0.1 * sqrt(2.0)))) for fi in f]))

    y = x * np.exp(0.1 * rng.standard_normal(x.size))
    for q in (0.5, 0.95):
        lo, hi = np.quantile(y, [q - 0.01, q + 0.01])
        assert cdf(lo) <= q <= cdf(hi), (q, cdf(lo), cdf(hi))
    with pytest.raises(ValueError, match="spike_prob in"):
        noise_quadrature(0.08, 1.5)
    with pytest.raises(ValueError, match="host_speed must be two positive"):
        noise_quadrature(0.08, 0.03, (0.0, 2.0))
