"""Each physical effect on purpose-made inputs, with numbers checked by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from adascale_rl.device import physics as ph
from adascale_rl.device.catalog import validate
from adascale_rl.device.model import Serving
from adascale_rl.device.presets import load_device
from adascale_rl.environment.env import AdaScaleEnv
from _envdata import LADDER, constant_trace, make_catalog_doc, write_env

RPI4 = load_device("rpi4")
PIXEL4 = load_device("pixel4")
CAT = validate(make_catalog_doc(LADDER))
BIG, MID, SMALL, TINY = range(4)
#: hosts slower or faster than their catalogs, for the tests that tie one copy of the model to another
HOST_SCALE = {"rpi4": 1.0, "pixel4": 0.8, "local-x86": 1.7}


#: the wake-up cost's spread of a host that measured its own (``wake_cv``; the others keep the preset's)
HOST_WAKE_CV = {"local-x86": 0.2}
#: a host whose variants wake up off the scheduler's line (``variant_wake``; the others on it)
HOST_WAKE_SCALE = {"local-x86": {"fast": 2.5, "mid": 0.6}}
#: hosts whose service co-runners lengthen (``corun_stretch``; the others' presets have none)
HOST_CORUN = {"local-x86": 0.2, "rpi4": 0.35}


def on_host(device):
    return dataclasses.replace(device, service_scale=HOST_SCALE.get(device.name, 1.0),
                               wake_cv=HOST_WAKE_CV.get(device.name, device.wake_cv),
                               corun_stretch=HOST_CORUN.get(device.name, device.corun_stretch))


def exo(**kw) -> ph.Exo:
    base = dict(freq_cap_mhz=math.inf, bg_cpu_util=0.0, bg_runnable=0.0, mem_avail_mb=2000.0, ambient_temp_c=25.0,
                battery_pct=100.0, plugged=True, request_rate_hz=8.0, deadline_ms=150.0)
    base.update(kw)
    return ph.Exo(**base)


def test_clock_snaps_down_to_the_ladder_and_takes_the_lowest_cap():
    ladder = RPI4.dvfs_mhz  # 600, 750, 1000, 1500
    assert ph.snap_down(1200, ladder) == 1000
    assert ph.snap_down(1500, ladder) == 1500
    assert ph.snap_down(100, ladder) == 600  # never below the lowest operating point
    assert ph.clock_mhz(math.inf, 1500, math.inf, ladder) == 1500
    assert ph.clock_mhz(1400, 1500, 800, ladder) == 750


def test_latency_scales_only_the_compute_bound_part_with_clock():
    physics = ph.DevicePhysics(RPI4, CAT)
    e = exo(request_rate_hz=0.0)
    state = physics.initial_state(e, MID)  # 60 ms, compute-bound 0.8
    _, top = physics.step(state, MID, e, ph.Noise(1.0), 1.0)
    _, half = physics.step(state, MID, exo(request_rate_hz=0.0, freq_cap_mhz=750.0), ph.Noise(1.0), 1.0)
    assert top.service_ms == pytest.approx(60.0)
    assert half.service_ms == pytest.approx(60.0 * (0.8 * 2 + 0.2))  # 108 ms, not 120


def test_serving_drops_frames_when_latency_exceeds_the_inter_arrival_time():
    physics = ph.DevicePhysics(RPI4, CAT)
    e = exo(request_rate_hz=30.0, deadline_ms=1000.0)  # big takes 120 ms: at most ~8 of 30 requests a second
    _, out = physics.step(physics.initial_state(e, BIG), BIG, e, ph.Noise(1.0), 1.0)
    assert out.serving.served_frac == pytest.approx(1000.0 / 120.0 / 30.0, rel=0.05)
    _, fast = physics.step(physics.initial_state(e, TINY), TINY, e, ph.Noise(1.0), 1.0)
    assert fast.serving.served_frac == pytest.approx(1.0) and fast.serving.on_time_frac == pytest.approx(1.0)


def test_busy_background_threads_slow_serial_work_too():
    """The measured reference machine: one app thread, 2 cores: 1 busy process costs nothing, 2 cost 1.5x, 4 2.5x
    (back to back), and a request of a sleeping app may wait for a core at wake-up."""
    doc = make_catalog_doc(LADDER)
    doc["threads"] = {"value": 1, "derived": "test"}
    physics = ph.DevicePhysics(load_device("local-x86"), validate(doc))
    means = []
    for busy in (0, 1, 2, 4):
        e = exo(request_rate_hz=1000.0, deadline_ms=1000.0, bg_runnable=float(busy), bg_cpu_util=min(busy / 2, 1.0))
        _, out = physics.step(physics.initial_state(e, TINY), TINY, e, ph.Noise(1.0), 1.0)
        means.append(1000.0 / (out.serving.served_frac * 1000.0))  # wall time per served request
    assert means[1] == pytest.approx(means[0]) and means[2] == pytest.approx(1.5 * means[0])
    assert means[3] == pytest.approx(2.5 * means[0])


def test_thermal_steady_state_is_ambient_plus_resistance_times_power():
    temp = 25.0
    for _ in range(5000):
        temp = ph.thermal_step_c(temp, 30.0, 4.0, RPI4.thermal_resistance_c_per_w, RPI4.thermal_time_constant_s, 1.0)
    assert temp == pytest.approx(30.0 + 8.6 * 4.0, abs=1e-6)  # 64.4 C
    # one time constant covers 1 - 1/e of the way
    one_tau = ph.thermal_step_c(25.0, 25.0, 4.0, 8.6, 120.0, 120.0)
    assert one_tau == pytest.approx(25.0 + 8.6 * 4.0 * (1 - math.exp(-1)))


def test_governor_steps_down_above_throttle_and_up_below_release_with_hysteresis():
    assert ph.throttle_step(3, 81.0, 80.0, 75.0, 3) == 2
    assert ph.throttle_step(2, 78.0, 80.0, 75.0, 3) == 2  # in the band: hold
    assert ph.throttle_step(2, 74.0, 80.0, 75.0, 3) == 3
    assert ph.throttle_step(0, 90.0, 80.0, 75.0, 3) == 0


def _run(physics, variant, e, steps):
    state = physics.initial_state(e, variant)
    outs = []
    for _ in range(steps):
        state, out = physics.step(state, variant, e, ph.Noise(1.0), 1.0)
        outs.append(out)
    return outs


def test_largest_variant_flat_out_in_hot_ambient_throttles_and_a_small_one_does_not():
    physics = ph.DevicePhysics(RPI4, CAT)
    hot = exo(ambient_temp_c=35.0, request_rate_hz=8.0, deadline_ms=150.0)
    big = _run(physics, BIG, hot, 900)
    tiny = _run(physics, TINY, hot, 900)
    assert min(o.freq_mhz for o in big) < RPI4.f_max_mhz
    assert max(o.temp_c for o in big) > RPI4.throttle_c
    assert all(o.freq_mhz == RPI4.f_max_mhz for o in tiny)
    assert max(o.temp_c for o in tiny) < RPI4.release_c
    # throttling costs latency later: the big variant's latency rises once throttled
    assert max(o.latency_ms for o in big) > big[0].latency_ms * 1.2


def test_switching_costs_what_the_catalog_says():
    physics = ph.DevicePhysics(RPI4, CAT)
    e = exo(request_rate_hz=5.0, deadline_ms=500.0)  # 5 Hz: the big variant keeps up once loaded
    state = physics.initial_state(e, TINY)
    _, out = physics.step(state, BIG, e, ph.Noise(1.0), 1.0)
    load_ms = 1000 * 24.0 / RPI4.storage_read_mb_s + RPI4.model_init_ms  # 593.3 ms on the Pi's microSD
    assert physics.load_ms[BIG] == pytest.approx(load_ms)
    assert out.switched and out.mem_mb == pytest.approx(15.0 + 60.0)  # old and new resident together
    assert out.serving.served_frac == pytest.approx(1 - load_ms / 1000, rel=1e-6)
    _, kept = physics.step(state, TINY, e, ph.Noise(1.0), 1.0)
    assert not kept.switched and kept.mem_mb == 15.0 and kept.serving.served_frac == pytest.approx(1.0)


def test_switch_that_does_not_fit_is_an_oom_kill():
    physics = ph.DevicePhysics(RPI4, CAT)
    e = exo(mem_avail_mb=70.0)  # big alone fits (60), big + mid (100) does not
    state = physics.initial_state(e, MID)
    new_state, out = physics.step(state, BIG, e, ph.Noise(1.0), 1.0)
    assert out.oom and out.serving.served_frac == 0.0 and out.serving.on_time_frac == 0.0
    assert new_state.loaded == BIG  # the app restarts with what it asked for
    state2, out2 = physics.step(new_state, BIG, e, ph.Noise(1.0), 1.0)
    assert not out2.oom


def test_battery_saver_caps_the_clock_on_battery_below_the_threshold():
    physics = ph.DevicePhysics(PIXEL4, CAT)
    low = exo(battery_pct=10.0, plugged=False)
    state = physics.initial_state(low, TINY)
    _, out = physics.step(state, TINY, low, ph.Noise(1.0), 1.0)
    assert out.freq_mhz == PIXEL4.saver_cap_mhz < PIXEL4.f_max_mhz
    _, charging = physics.step(state, TINY, exo(battery_pct=10.0, plugged=True), ph.Noise(1.0), 1.0)
    assert charging.freq_mhz == PIXEL4.f_max_mhz
    assert ph.battery_saver_cap_mhz(RPI4, 1.0, False) == math.inf  # no battery, no saver


def test_battery_drains_by_the_energy_spent():
    assert ph.battery_pct_after(50.0, 10.8 * 3600 * 0.01, 10.8) == pytest.approx(49.0)
    physics = ph.DevicePhysics(PIXEL4, CAT)
    e = exo(battery_pct=50.0, plugged=False, request_rate_hz=30.0, deadline_ms=1000.0)
    outs = _run(physics, BIG, e, 60)
    spent = sum(o.energy_j for o in outs[:-1])
    assert outs[-2].battery_pct == pytest.approx(50.0 - 100 * spent / (10.8 * 3600))
    assert outs[-1].battery_pct < 50.0


def test_energy_follows_the_clock_and_the_requests_served_not_the_waiting():
    physics = ph.DevicePhysics(RPI4, CAT)
    e = exo(request_rate_hz=5.0, deadline_ms=1000.0)
    st = physics.initial_state(e, MID)
    _, top = physics.step(st, MID, e, ph.Noise(1.0), 1.0)
    assert top.energy_j == pytest.approx(5 * 170.0 / 1000.0)  # 5 requests of 170 mJ at the reference point
    _, low = physics.step(st, MID, exo(request_rate_hz=5.0, deadline_ms=1000.0, freq_cap_mhz=750.0), ph.Noise(1.0), 1.0)
    assert low.energy_j == pytest.approx(5 * 0.170 * 0.5 ** RPI4.freq_exponent * (0.8 * 2 + 0.2))
    busy = exo(request_rate_hz=5.0, deadline_ms=1000.0, bg_runnable=8.0, bg_cpu_util=1.0)
    _, shared = physics.step(st, MID, busy, ph.Noise(1.0), 1.0)
    assert shared.latency_ms > 1.5 * top.latency_ms
    # waiting for a core costs nothing: the same energy per request served (a request that waited past its
    # deadline is dropped, never computed)
    assert shared.serving.served < top.serving.served
    assert shared.energy_j / shared.serving.served == pytest.approx(top.energy_j / top.serving.served)


def test_unfit_variant_is_masked_and_choosing_it_anyway_is_an_oom_kill(tmp_path):
    train = {f"t{i}": constant_trace(60, mem_avail_mb=70.0, request_rate_hz=8, deadline_ms=150) for i in range(2)}
    spec = write_env(tmp_path, train=train, test=train)
    env = AdaScaleEnv(spec, split="test")
    _, info = env.reset(seed=0, options={"trace": 0, "start": 0, "variant": "mid"})
    mask = info["action_mask"]
    assert mask[0] == 1  # keep is never masked
    assert mask[1 + BIG] == 0  # 40 + 60 > 70
    assert mask[1 + SMALL] == 1 and mask[1 + TINY] == 1  # 40 + 25, 40 + 15 fit
    assert mask[1 + MID] == 1  # asking for what is loaded is a keep, never masked
    _, r, _, _, info = env.step(1 + BIG)
    assert info["oom"] and info["reward_oom"] == -env.reward_fn.w_oom


@pytest.mark.parametrize("case", range(6))
def test_vectorised_interval_table_matches_step_pair_by_pair(case):
    rng = np.random.default_rng(case)
    physics = ph.DevicePhysics(dataclasses.replace(PIXEL4 if case % 2 else RPI4, service_scale=(1.0, 1.6, 0.7)[case % 3]),
                               CAT)
    e = exo(bg_cpu_util=float(rng.uniform(0, 1)), bg_runnable=float(rng.uniform(0, 8)),
            mem_avail_mb=float(rng.choice([70.0, 90.0, 500.0])),
            request_rate_hz=float(rng.choice([0.0, 5.0, 12.0, 30.0])), deadline_ms=float(rng.uniform(20, 200)),
            battery_pct=float(rng.uniform(5, 100)), plugged=bool(case % 3 == 0))
    noise = ph.Noise(float(rng.uniform(0.8, 2.0)))
    table = None
    for loaded, killed in [(v, k) for v in range(len(CAT)) for k in (False, True)]:
        state = ph.PhysicsState(loaded=loaded, temp_c=60.0, thermal_level=int(rng.integers(0, 3)), battery_used_j=0.0,
                                killed=killed)
        for target in range(len(CAT)):
            _, out = physics.step(state, target, e, noise, 1.0)
            if table is None or table.get("_key") != (out.freq_mhz, killed):
                table = physics.interval_table(out.freq_mhz, e, noise, 1.0, killed)
                table["_key"] = (out.freq_mhz, killed)
            assert table["on_time_frac"][loaded, target] == pytest.approx(out.serving.on_time_frac, abs=1e-12)
            assert table["energy_j"][loaded, target] == pytest.approx(out.energy_j, rel=1e-9, abs=1e-12)
            assert table["mem_mb"][loaded, target] == pytest.approx(out.mem_mb)
            assert table["oom"][loaded, target] == out.oom
            assert table["switched"][loaded, target] == out.switched
            assert table["latency_ms"][loaded, target] == pytest.approx(out.latency_ms)


def test_switch_holds_the_shared_runtime_overhead_once():
    doc = make_catalog_doc(LADDER)
    doc["runtime_overhead_mb"] = {"value": 10.0, "derived": "test"}
    cat = validate(doc)
    assert cat.runtime_overhead_mb == 10.0
    physics = ph.DevicePhysics(RPI4, cat)
    e = exo()
    _, out = physics.step(physics.initial_state(e, TINY), BIG, e, ph.Noise(1.0), 1.0)
    assert out.mem_mb == pytest.approx(15.0 + 60.0 - 10.0)
    assert ph.switch_peak_mb(cat[TINY], cat[BIG], 10.0) == pytest.approx(65.0)
    assert validate(cat.to_json()).runtime_overhead_mb == 10.0  # survives a round trip


def test_after_an_oom_kill_the_next_variant_loads_alone():
    physics = ph.DevicePhysics(RPI4, CAT)
    e = exo(mem_avail_mb=50.0)  # mid (40) runs alone; mid + small (65) does not fit
    state = physics.initial_state(exo(), BIG)
    state, out = physics.step(state, BIG, e, ph.Noise(1.0), 1.0)  # big (60) no longer fits: killed
    assert out.oom and state.killed
    state2, out2 = physics.step(state, MID, e, ph.Noise(1.0), 1.0)  # restart with mid: loads alone
    assert not out2.oom and out2.mem_mb == 40.0 and out2.switched
    assert out2.serving.served_frac < 1.0  # it pays the load time
    _, again = physics.step(state, BIG, e, ph.Noise(1.0), 1.0)  # asking for the same variant: killed again
    assert again.oom and not again.switched


def test_mask_after_an_oom_kill_counts_only_the_new_variant(tmp_path):
    train = {f"t{i}": constant_trace(60, mem_avail_mb=50.0, request_rate_hz=8, deadline_ms=150) for i in range(2)}
    spec = write_env(tmp_path, train=train, test=train)
    env = AdaScaleEnv(spec, split="test")
    env.reset(seed=0, options={"trace": 0, "start": 0, "variant": "big"})
    _, _, _, _, info = env.step(0)  # big does not fit: OOM kill
    assert info["oom"]
    mask = info["action_mask"]
    assert mask[1 + MID] == 1 and mask[1 + SMALL] == 1  # each fits alone now
    _, _, _, _, info = env.step(1 + MID)
    assert not info["oom"]


def test_step_battery_and_saver_are_battery_pct_after_exactly():
    physics = ph.DevicePhysics(PIXEL4, CAT)
    wh = PIXEL4.battery_wh
    e = exo(battery_pct=PIXEL4.saver_threshold_pct + 0.01, plugged=False, request_rate_hz=30.0, deadline_ms=1000.0)
    state = physics.initial_state(e, BIG)
    clocks = []
    for _ in range(40):
        before = ph.battery_pct_after(e.battery_pct, state.battery_used_j, wh)
        cap = ph.battery_saver_cap_mhz(PIXEL4, before, e.plugged)
        new_state, out = physics.step(state, BIG, e, ph.Noise(1.0), 1.0)
        assert out.freq_mhz == ph.clock_mhz(e.freq_cap_mhz, physics.ladder[state.thermal_level], cap, physics.ladder)
        assert out.battery_pct == ph.battery_pct_after(e.battery_pct, new_state.battery_used_j, wh)
        clocks.append(out.freq_mhz)
        state = new_state
    assert clocks[0] > PIXEL4.saver_cap_mhz and clocks[-1] == PIXEL4.saver_cap_mhz  # the saver engaged on the way


def _shipped(device: str):
    from adascale_rl import paths
    from adascale_rl.device.catalog import load_catalog

    preset = load_device(device)
    catalog = load_catalog(paths.envs_dir() / "catalogs" / f"{device}.json")
    return preset, catalog, ph.DevicePhysics(preset, catalog)


def test_pixel4_flat_out_inference_throttles_within_minutes_at_25c_as_its_calibration_says():
    """The preset's thermal numbers are derived from a practitioner report (sustained inference on a
    phone at 25 C slows down within ~5 minutes); with the shipped catalog, inference run flat out
    (frames arriving faster than it serves them) must reproduce that, and only for the large variants."""
    preset, catalog, physics = _shipped("pixel4")
    largest = max(range(len(catalog)), key=lambda i: catalog.variants[i].latency_ms)
    smallest = min(range(len(catalog)), key=lambda i: catalog.variants[i].latency_ms)
    flat_out = exo(request_rate_hz=10_000.0, deadline_ms=1000.0)  # more frames than any variant serves
    big = _run(physics, largest, flat_out, 600)
    small = _run(physics, smallest, flat_out, 600)
    assert big[0].serving.served_frac < 1.0 and small[0].serving.served_frac < 1.0  # both run flat out
    crossed = next(t for t, o in enumerate(big) if o.temp_c > preset.throttle_c)
    assert 120 <= crossed <= 300, crossed  # ~3 minutes (170 s by the preset's derivation)
    assert min(o.freq_mhz for o in big) < preset.f_max_mhz
    assert max(o.latency_ms for o in big) > 1.1 * big[0].latency_ms  # throttling costs latency later
    assert max(o.temp_c for o in small) < preset.throttle_c
    assert all(o.freq_mhz == preset.f_max_mhz for o in small)


@pytest.mark.parametrize("device, power_w, settles_c", [
    ("rpi4", 6.4, 80.0),        # "4-core stress (6.4 W) at 25 C settles at the 80 C throttle point"
    ("jetson-nano", 6.0, 61.0),  # "keeps a 6 W load at ~61 C in 25 C air"
])
def test_thermal_resistance_reproduces_the_presets_stated_steady_state(device, power_w, settles_c):
    """Every core busy with other work (the load the derivations name) at 25 C, run through the physics."""
    preset, _, physics = _shipped(device)
    assert preset.idle_w + preset.dyn_w_max == pytest.approx(power_w, abs=0.05)
    load = exo(bg_cpu_util=1.0, request_rate_hz=0.0)
    state = ph.PhysicsState(loaded=0, temp_c=25.0, thermal_level=physics.top_level, battery_used_j=0.0)
    steps = int(20 * preset.thermal_time_constant_s)
    temps = []
    for i in range(steps):
        state, out = physics.step(state, 0, load, ph.Noise(1.0), 1.0)
        if i == 0:
            assert out.power_w == pytest.approx(power_w, abs=0.05) and out.freq_mhz == preset.f_max_mhz
        temps.append(out.temp_c)
    # it settles there (the Pi 4's 80.04 C is a hair above its throttle point, so it then cycles just below)
    assert max(temps[-int(2 * preset.thermal_time_constant_s):]) == pytest.approx(settles_c, abs=1.0)


@pytest.mark.parametrize("bg, ambient", [(1.0, 25.0), (0.7, 25.0), (0.5, 35.0)])
def test_a_window_under_heavy_background_load_starts_at_the_governors_equilibrium(bg, ambient):
    """A hot start is not a fully throttled one: the governor sits at the highest operating point
    whose steady temperature under the background load stays at or below the throttle point."""
    preset, catalog, physics = _shipped("pixel4")
    e = exo(bg_cpu_util=bg, ambient_temp_c=ambient)

    def steady(level):
        return ambient + preset.thermal_resistance_c_per_w * (
            preset.idle_w + ph.dynamic_power_w(preset, preset.dvfs_mhz[level], bg))

    assert steady(len(preset.dvfs_mhz) - 1) > preset.throttle_c  # full clock would overheat
    state = physics.initial_state(e, 0)
    assert 0 < state.thermal_level < len(preset.dvfs_mhz) - 1
    assert state.temp_c == pytest.approx(steady(state.thermal_level))
    assert steady(state.thermal_level) <= preset.throttle_c < steady(state.thermal_level + 1)
    # and it is (close to) a fixed point: at rest the governor stays there
    state2, out = physics.step(state, 0, e._replace(request_rate_hz=0.0), ph.Noise(1.0), 1.0)
    assert state2.thermal_level == state.thermal_level and out.freq_mhz == preset.dvfs_mhz[state.thermal_level]


def test_a_cool_start_is_unthrottled():
    preset, _, physics = _shipped("pixel4")
    state = physics.initial_state(exo(bg_cpu_util=0.2), 0)
    assert state.thermal_level == len(preset.dvfs_mhz) - 1


@pytest.mark.parametrize("device", ["rpi4", "jetson-nano", "pixel4", "local-x86"])
def test_the_start_is_where_the_governor_settles_under_the_background_load(device):
    """Over a grid of ambient temperatures and loads: left at rest under the load, the governor
    keeps visiting the starting operating point, and the starting temperature is one it passes."""
    preset = load_device(device)
    from adascale_rl import paths
    from adascale_rl.device.catalog import load_catalog

    physics = ph.DevicePhysics(preset, load_catalog(paths.envs_dir() / "catalogs" / f"{device}.json"))
    steps = int(12 * preset.thermal_time_constant_s)
    cycles = 0
    for ambient in (-10.0, 10.0, 25.0, 35.0, 45.0, 60.0):
        for bg in (0.0, 0.3, 0.6, 0.9, 1.0):
            e = exo(ambient_temp_c=ambient, bg_cpu_util=bg, request_rate_hz=0.0)
            state = start = physics.initial_state(e, 0)
            levels, temps = [], []
            for _ in range(steps):
                state, out = physics.step(state, 0, e, ph.Noise(1.0), 1.0)
                levels.append(state.thermal_level)
                temps.append(out.temp_c)
            late = set(levels[steps // 2:])
            assert start.thermal_level in late | {levels[-1]}, (device, ambient, bg, start, sorted(late))
            if start.thermal_level < physics.top_level:
                late_temps = temps[steps // 2:]
                assert min(late_temps) - 0.5 <= start.temp_c <= max(late_temps) + 0.5, (device, ambient, bg, start)
            cycles += len(late) > 1
    if device == "rpi4":
        assert cycles > 0  # the grid does reach the cycling case (e.g. 25 C, all cores busy)


# --------------------------------------------------------------------------- the batched transition


def _random_batch(rng, physics, size):
    """``size`` random (state, target, context, noise) cases, as lists of scalar tuples and as arrays."""
    n = len(physics.catalog)
    cases = []
    for _ in range(size):
        e = ph.Exo(freq_cap_mhz=float(rng.choice([math.inf, rng.uniform(500, 2000)])),
                   bg_cpu_util=float(rng.uniform(0, 1)),
                   bg_runnable=float(rng.choice([0.0, rng.uniform(0, 10), 1.0, 2.0])),
                   mem_avail_mb=float(rng.choice([40.0, 70.0, 500.0])), ambient_temp_c=float(rng.uniform(15, 40)),
                   battery_pct=float(rng.choice([rng.uniform(0, 100), 14.0, 100.0])), plugged=bool(rng.random() < 0.5),
                   request_rate_hz=float(rng.choice([0.0, rng.uniform(1, 1000), rng.uniform(1, 30)])),
                   deadline_ms=float(np.exp(rng.uniform(np.log(0.5), np.log(500)))))
        s = ph.PhysicsState(loaded=int(rng.integers(n)), temp_c=float(rng.uniform(30, 95)),
                            thermal_level=int(rng.integers(len(physics.ladder))),
                            battery_used_j=float(rng.choice([0.0, rng.uniform(0, 500), rng.uniform(0, 5e4)])),
                            killed=bool(rng.random() < 0.1))
        cases.append((s, int(rng.integers(n)), e, ph.Noise(float(np.exp(rng.normal(0, 0.3))))))
    states, targets, exos, noises = zip(*cases)
    col = lambda rows, k, dt=np.float64: np.array([getattr(r, k) for r in rows], dtype=dt)  # noqa: E731
    bstate = ph.PhysicsState(col(states, "loaded", np.int64), col(states, "temp_c"),
                             col(states, "thermal_level", np.int64), col(states, "battery_used_j"),
                             col(states, "killed", bool))
    bexo = ph.Exo(*[col(exos, k, bool if k == "plugged" else np.float64) for k in ph.Exo._fields])
    return cases, bstate, np.array(targets, dtype=np.int64), bexo, ph.Noise(col(noises, "latency"))


@pytest.mark.parametrize("device", ["rpi4", "pixel4", "local-x86"])
def test_the_single_step_is_the_batched_step_on_random_cases(device):
    """DevicePhysics.step (the single environment's scalar fast path) against step_batch (the vector
    environment's transition) on 10,002 random cases over three presets (pixel4 has a battery and a
    battery saver): the discrete outcome (clock, variant, switch, OOM, memory, governor level) exactly,
    every number to 1e-9 relative (numpy's exp/log/pow against math's may differ by an ulp). Two of the presets
    on a host slower or faster than their catalog (``service_scale``), one with its own wake-up spread (``wake_cv``)
    and variants that wake up off the line (``variant_wake``)."""
    doc = make_catalog_doc(LADDER + [{"id": "fast", "accuracy": 0.3, "latency_ms": 0.2, "peak_mem_mb": 5.0,
                                      "size_mb": 0.1, "energy_mj": 0.5}])
    doc["runtime_overhead_mb"] = {"value": 3.0, "derived": "test"}
    doc["threads"] = {"value": 1 if device == "local-x86" else 4, "derived": "test"}
    physics = ph.DevicePhysics(on_host(load_device(device)), validate(doc), variant_wake=HOST_WAKE_SCALE.get(device))
    rng = np.random.default_rng(sum(map(ord, device)))
    checked = 0
    for dt in (0.5, 1.0, 2.0):
        cases, bstate, btarget, bexo, bnoise = _random_batch(rng, physics, 1112)
        new_b, out_b = physics.step_batch(bstate, btarget, bexo, bnoise, dt)
        for j, (state, target, e, noise) in enumerate(cases):
            new, out = physics.step(state, target, e, noise, dt)
            assert new.loaded == new_b.loaded[j] and new.thermal_level == new_b.thermal_level[j]
            assert new.killed == new_b.killed[j]
            assert new.temp_c == pytest.approx(new_b.temp_c[j], rel=1e-9)
            assert new.battery_used_j == pytest.approx(new_b.battery_used_j[j], rel=1e-9, abs=1e-12)
            assert (out.variant, out.freq_mhz, out.switched, out.oom, out.mem_mb) == (
                out_b.variant[j], out_b.freq_mhz[j], out_b.switched[j], out_b.oom[j], out_b.mem_mb[j])
            assert out.accuracy == out_b.accuracy[j]
            for k in ("latency_ms", "energy_j", "power_w", "temp_c", "battery_pct", "service_ms"):
                assert getattr(out, k) == pytest.approx(getattr(out_b, k)[j], rel=1e-9, abs=1e-15), k
            for k in Serving._fields:
                assert getattr(out.serving, k) == pytest.approx(getattr(out_b.serving, k)[j], rel=1e-9, abs=1e-12), k
            checked += 1
    assert checked == 3336
    # the cases reach every branch: switches, OOM kills, restarts after one, the battery saver, throttling
    assert out_b.oom.any() and out_b.switched.any() and bstate.killed.any() and (bexo.request_rate_hz == 0).any()
    if device in HOST_WAKE_CV:  # the host's own wake-up spread reaches the serving (not only the preset's default)
        default = ph.DevicePhysics(dataclasses.replace(on_host(load_device(device)), wake_cv=load_device(device).wake_cv),
                                   validate(doc), variant_wake=HOST_WAKE_SCALE.get(device))
        _, out_d = default.step_batch(bstate, btarget, bexo, bnoise, dt)
        assert not np.allclose(out_d.serving.on_time_frac, out_b.serving.on_time_frac, rtol=1e-9, atol=1e-12)
    if device in HOST_CORUN:  # the co-runners' lengthening of the service reaches it beside busy processes only
        plain = ph.DevicePhysics(dataclasses.replace(on_host(load_device(device)), corun_stretch=0.0), validate(doc),
                                 variant_wake=HOST_WAKE_SCALE.get(device))
        _, out_p = plain.step_batch(bstate, btarget, bexo, bnoise, dt)
        busy = (bexo.bg_runnable > 0) & ~out_b.oom
        assert np.all(out_b.latency_ms[busy] > out_p.latency_ms[busy])
        np.testing.assert_array_equal(out_p.latency_ms[~busy & ~out_b.oom], out_b.latency_ms[~busy & ~out_b.oom])
    if device in HOST_WAKE_SCALE:  # and so do the variants' own wake-up costs
        line = ph.DevicePhysics(on_host(load_device(device)), validate(doc))
        _, out_l = line.step_batch(bstate, btarget, bexo, bnoise, dt)
        named = np.isin(btarget, [physics.catalog.ids.index(v) for v in HOST_WAKE_SCALE[device]])
        assert not np.allclose(out_l.latency_ms[named], out_b.latency_ms[named], rtol=1e-9)
        np.testing.assert_allclose(out_l.latency_ms[~named], out_b.latency_ms[~named], rtol=1e-12)


def test_a_variant_that_wakes_up_dearer_pays_it_in_the_world_only():
    """``variant_wake``: a named variant's wake-up cost is that many times the scheduler's line in the world (the
    step, the batched model, the planners' table), the others stay on it, and the app's model (its expected
    latency, its table) keeps the line: a sleeping app's quiet response is (service + factor x the line's cost)
    x the frame jitter's mean."""
    dev = dataclasses.replace(load_device("local-x86"), idle_wake_ms=0.5, idle_wake_per_ms=0.2)
    doc = make_catalog_doc(LADDER)
    doc["threads"] = {"value": 1, "derived": "test"}
    cat = validate(doc)
    base = ph.DevicePhysics(dev, cat)
    dear = ph.DevicePhysics(dev, cat, variant_wake={"tiny": 3.0})
    assert dear.table.to_dict() == base.table.to_dict() and "wake_scale" not in dear.table.arrays()
    np.testing.assert_array_equal(dear.world_arrays["wake_scale"], [1.0, 1.0, 1.0, 3.0])
    assert "wake_scale" not in ph.DevicePhysics(dev, cat, variant_wake={"tiny": 1.0}).world_arrays
    e = exo(request_rate_hz=20.0, deadline_ms=500.0)  # 50 ms between requests: every variant sleeps fully
    f = dev.f_max_mhz
    for target, factor in ((TINY, 3.0), (SMALL, 1.0)):
        state = ph.PhysicsState(loaded=target, temp_c=40.0, thermal_level=base.top_level, battery_used_j=0.0,
                                killed=False)
        _, plain = base.step(state, target, e, ph.Noise(1.0), 1.0)
        _, got = dear.step(state, target, e, ph.Noise(1.0), 1.0)
        lat = plain.service_ms
        share = 1.0 - math.exp(-(50.0 - lat) / dev.idle_sleep_ms)
        line = (0.5 + 0.2 * lat) * share
        assert got.service_ms == plain.service_ms
        jitter = math.exp(0.5 * ph.FRAME_SIGMA ** 2)  # the mean of the frame jitter's log-normal
        assert got.latency_ms - plain.latency_ms == pytest.approx((factor - 1.0) * line * jitter, rel=1e-9, abs=1e-12)
        assert dear.interval_table(f, e, ph.Noise(1.0), 1.0)["latency_ms"][0, target] == pytest.approx(got.latency_ms)
        assert dear.expected_latency_ms(target, f, 0.0, 20.0, 500.0) == base.expected_latency_ms(target, f, 0.0, 20.0,
                                                                                                 500.0)


def test_a_slower_host_is_a_persistent_noise_on_the_world_and_not_on_the_apps_model():
    """``service_scale`` s: every variant serves as under a latency noise s times the draw (service time,
    responses, what is on time, the work's energy), in the scalar step and in the planners' interval table,
    while what the app expects (``expected_latency_ms``, the table the heuristics and the prior read) stays the
    catalog's."""
    s = 1.8
    slow = ph.DevicePhysics(dataclasses.replace(RPI4, service_scale=s), CAT)
    base = ph.DevicePhysics(RPI4, CAT)
    assert slow.table.to_dict() == base.table.to_dict()
    np.testing.assert_array_equal(slow.world.latency_ms, s * base.table.latency_ms)
    np.testing.assert_array_equal(slow.world.energy_mj, s * base.table.energy_mj)
    np.testing.assert_array_equal(slow.world.peak_mem_mb, base.table.peak_mem_mb)
    for e in (exo(), exo(bg_runnable=3.0, request_rate_hz=30.0, deadline_ms=60.0), exo(freq_cap_mhz=900.0)):
        for loaded in (MID, SMALL):
            state = ph.PhysicsState(loaded=loaded, temp_c=40.0, thermal_level=base.top_level, battery_used_j=0.0,
                                    killed=False)
            for target in range(len(CAT)):
                _, got = slow.step(state, target, e, ph.Noise(1.1), 1.0)
                _, want = base.step(state, target, e, ph.Noise(1.1 * s), 1.0)
                _, plain = base.step(state, target, e, ph.Noise(1.1), 1.0)
                assert got.service_ms == pytest.approx(want.service_ms, rel=1e-12)
                assert got.service_ms == pytest.approx(s * plain.service_ms, rel=1e-12)
                assert got.latency_ms == pytest.approx(want.latency_ms, rel=1e-12) and got.latency_ms > plain.latency_ms
                for k in Serving._fields:
                    assert getattr(got.serving, k) == pytest.approx(getattr(want.serving, k), rel=1e-12, abs=1e-15)
                assert got.energy_j == pytest.approx(want.energy_j, rel=1e-12, abs=1e-15)
                assert (got.mem_mb, got.oom, got.accuracy) == (want.mem_mb, want.oom, want.accuracy)
                f = got.freq_mhz
                assert slow.expected_latency_ms(target, f, e.bg_runnable, e.request_rate_hz, e.deadline_ms) == \
                    base.expected_latency_ms(target, f, e.bg_runnable, e.request_rate_hz, e.deadline_ms)
        tab = slow.interval_table(f, e, ph.Noise(1.1), 1.0)
        ref = base.interval_table(f, e, ph.Noise(1.1 * s), 1.0)
        for k in ("on_time_frac", "energy_j", "latency_ms"):
            np.testing.assert_allclose(tab[k], ref[k], rtol=1e-12, atol=1e-15)
