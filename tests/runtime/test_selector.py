"""The on-device Selector: the observation it builds, its decisions, and every way it refuses to fail."""

from __future__ import annotations

import json
import logging
import math
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from adascale_rl.environment.actions import action_for, target_of
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.observation import INDEX
from adascale_rl.runtime import Selector, schema

LOGGER = "adascale_rl.runtime"


class FakeMonitor:
    """A context reader whose readings the test sets (or makes raise)."""

    def __init__(self, **fields):
        self.fields = {"bg_cpu_util": 0.1, "bg_runnable": 0.4, "mem_avail_mb": 2000.0, "freq_mhz": 1500.0,
                       "battery_pct": None, "plugged": None, "soc_temp_c": 45.0, **fields}
        self.error: Exception | None = None
        self.reads = 0

    def read(self):
        self.reads += 1
        if self.error is not None:
            raise self.error
        return SimpleNamespace(**self.fields)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def _rewrite_npz(folder, change, update_sha=True):
    path = folder / "policy.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path, **arrays)
    if update_sha:
        _set_sha(folder, "policy.npz")


def _set_sha(folder, name):
    doc = json.loads((folder / "selector.json").read_text())
    doc["files"][name] = schema.sha256_file(folder / name)
    (folder / "selector.json").write_text(json.dumps(doc))


# ------------------------------------------------------------------ the observation, as the environment builds it

def _moving_context(tmp_path):
    """A test trace whose context moves: background load, memory, the app's rate and deadline change in blocks."""
    from _envdata import constant_trace, write_env

    n = 120
    block = (np.arange(n) // 10) % 4
    test = {"moving": constant_trace(n, bg_cpu_util=np.array([0.1, 0.9, 0.5, 0.2])[block],
                                     bg_runnable=np.array([0.2, 6.0, 2.0, 0.5])[block],
                                     mem_avail_mb=np.array([2000.0, 50.0, 300.0, 70.0])[block],
                                     request_rate_hz=np.array([8.0, 20.0, 8.0, 30.0])[block],
                                     deadline_ms=np.array([150.0, 40.0, 300.0, 30.0])[block])}
    (tmp_path / "moving").mkdir()
    return write_env(tmp_path / "moving", train={"t0": test["moving"]}, test=test).dataset


def test_the_selector_builds_the_environments_observation_and_mask(exported, fixture_env_yaml, tmp_path):
    """Driven in lockstep with the environment (the fake monitor reads what the simulator measured; the app
    reports the interval's served requests with their latency and energy), the selector's observation equals
    the environment's field by field (the miss rate to within one request of the interval: it counts whole
    requests) and its mask equals action_masks(), through switches, masked switches and mode changes."""
    env = AdaScaleEnv(str(fixture_env_yaml), split="test", dataset=_moving_context(tmp_path), spike_prob=0.2,
                      max_episode_steps=120)
    obs, info = env.reset(seed=3, options={"trace": 0, "start": 0, "variant": "small"})
    st, first = env.sim_state, env.episode.exo[0]
    mon = FakeMonitor(freq_mhz=env.physics.clock(st, first), bg_cpu_util=first.bg_cpu_util,
                      bg_runnable=first.bg_runnable, mem_avail_mb=first.mem_avail_mb, plugged=first.plugged,
                      soc_temp_c=st.temp_c)
    sel = Selector.load(exported["prior"], monitor=mon, initial="small")
    clock = [0.0]
    sel._now = lambda: clock[0]
    sel.set_mode(rate_hz=first.request_rate_hz, deadline_ms=first.deadline_ms)
    miss_i = INDEX["last_miss_rate"]
    switches = masked = 0
    for t in range(120):
        variant = sel.select()
        assert sel.status == "ok"
        np.testing.assert_allclose(sel._obs[:miss_i], obs[:miss_i], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(sel._obs[miss_i + 1:], obs[miss_i + 1:], rtol=1e-6, atol=1e-6)
        exo_now = env.episode.exo[max(t - 1, 0)]
        assert abs(sel._obs[miss_i] - obs[miss_i]) <= 0.5 / exo_now.request_rate_hz + 1e-6
        np.testing.assert_array_equal(sel._mask, env.action_masks())
        masked += not env.action_masks().all()
        target = env.catalog.index(variant)
        obs, _, _, done, info = env.step(action_for(target, env.sim_state.loaded))
        switches += info["switched"]
        # the interval as the app lived it: served requests, each with the mean latency and its share of energy
        exo = env.episode.exo[t]
        issued = exo.request_rate_hz * env.period_s
        served = max(1, round(info["served_frac"] * issued))
        on_time = round((1.0 - info["miss_rate"]) * issued)
        for k in range(served):
            sel.report(info["latency_ms"], on_time=k < on_time, energy_mj=info["energy_mj"] / served)
        clock[0] += env.period_s
        mon.fields.update(freq_mhz=info["freq_mhz"], bg_cpu_util=exo.bg_cpu_util, bg_runnable=exo.bg_runnable,
                          mem_avail_mb=exo.mem_avail_mb, plugged=exo.plugged, soc_temp_c=info["temp_c"])
        nxt = env.episode.exo[min(t + 1, len(env.episode.exo) - 1)]
        sel.set_mode(rate_hz=nxt.request_rate_hz, deadline_ms=nxt.deadline_ms)
        if done:
            break
    assert switches >= 2 and masked >= 5  # the lockstep covered switches and masks, not only keeps


def test_a_heuristic_folder_decides_as_the_heuristic_does_in_the_environment(fixture_env_yaml, tmp_path):
    from adascale_rl.policies.heuristics import GreedyPolicy
    from adascale_rl.evaluation.bench import tuned_policy
    from adascale_rl.runtime.export import export_heuristic

    out = export_heuristic("greedy", str(fixture_env_yaml), tmp_path / "h", tune=tuned_policy, quick=True)
    margin = json.loads((out / "selector.json").read_text())["policy"]["params"]["margin"]
    env = AdaScaleEnv(str(fixture_env_yaml), split="test")
    obs, info = env.reset(seed=0, options={"trace": 0, "start": 0, "variant": "big"})
    greedy = GreedyPolicy(margin=margin)
    greedy.reset(env)
    first = env.episode.exo[0]
    mon = FakeMonitor(freq_mhz=env.physics.clock(env.sim_state, first), bg_cpu_util=first.bg_cpu_util,
                      bg_runnable=first.bg_runnable, mem_avail_mb=first.mem_avail_mb, soc_temp_c=env.sim_state.temp_c)
    sel = Selector.load(out, monitor=mon, initial="big")
    assert sel.backend == "heuristic"
    choices = set()
    for bg in (0.1, 0.9, 3.5, 12.0, 0.2):
        for field, value in (("bg_runnable", bg), ("bg_cpu_util", min(bg, 1.0))):
            mon.fields[field] = value
        sel.set_mode(rate_hz=8, deadline_ms=150)
        loaded_before = sel.variants.index(sel.variant)
        chosen = sel.select()
        want = greedy.act(sel._obs.copy(), {"action_mask": sel._mask.copy()})
        assert chosen == env.catalog.ids[target_of(want, loaded_before)]
        choices.add(chosen)
    assert len(choices) >= 2  # the context moved the decision


# ------------------------------------------------------------------ the fallback rule

def test_fallback_rule_is_the_most_accurate_variant_within_the_budget(folder, caplog):
    (folder / "policy.npz").unlink()
    sel = Selector.load(folder, monitor=FakeMonitor())
    assert sel.select() == "tiny"  # no mode yet: the fastest
    sel.set_mode(rate_hz=8, deadline_ms=150)  # budget min(150, 125) ms; 1.5 x latency: mid (90) fits, big (180) not
    assert sel.select() == "mid"
    sel.set_mode(deadline_ms=20)  # 7.5 ms (tiny) fits, 30 ms (small) does not
    assert sel.select() == "tiny"
    sel.set_mode(deadline_ms=1)  # nothing fits: the fastest
    assert sel.select() == "tiny"
    loose = Selector.load(folder, monitor=FakeMonitor(), fallback_margin=1.0)
    loose.set_mode(rate_hz=8, deadline_ms=150)
    assert loose.select() == "big"  # 120 ms <= 125 ms without margin
    fixed = Selector.load(folder, monitor=FakeMonitor(), fallback="small")
    assert fixed.select() == "small"


def test_the_warning_of_a_folder_it_cannot_use_says_the_rule_moves_with_the_deadline(folder, caplog):
    (folder / "policy.npz").unlink()
    sel = Selector.load(folder, monitor=FakeMonitor())
    (w,) = warnings_of(caplog)
    assert "fallback rule's variant" in w and "tiny until set_mode gives one" in w, w
    sel.set_mode(rate_hz=8, deadline_ms=150)
    assert sel.select() == "mid"  # what the warning promised: the rule's choice for the deadline


@pytest.mark.parametrize("kwargs, words", [({"backend": "onnx"}, "backend='onnx'"),
                                           ({"fallback_margin": -1}, "fallback_margin must be a positive"),
                                           ({"fallback_margin": "wide"}, "fallback_margin must be a positive")])
def test_an_argument_no_folder_could_make_valid_is_the_apps_bug_and_raises(folder, kwargs, words):
    with pytest.raises(ValueError, match=words):
        Selector.load(folder, monitor=FakeMonitor(), **kwargs)


# ------------------------------------------------------------------ every failure: the fallback and one warning

def _expect_fallback(sel, caplog, words, selects=3, variant="mid"):
    sel.set_mode(rate_hz=8, deadline_ms=150)
    got = [sel.select() for _ in range(selects)]
    assert got == [variant] * selects
    w = warnings_of(caplog)
    assert len(w) == 1, w
    assert words in w[0] and "fallback" in w[0]
    assert sel.status != "ok" and words in sel.status


def test_missing_policy_file(folder, caplog):
    (folder / "policy.npz").unlink()
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "policy.npz is missing")


def test_corrupt_policy_file(folder, caplog):
    (folder / "policy.npz").write_bytes(b"PK\x03\x04 this is not a zip archive" * 10)
    _set_sha(folder, "policy.npz")
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "not a readable .npz")


def test_policy_arrays_of_the_wrong_shape(folder, caplog):
    _rewrite_npz(folder, lambda a: a.update(action_w=a["action_w"][:, :3]))
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "has shape")


def test_selector_json_from_another_version(folder, caplog):
    doc = json.loads((folder / "selector.json").read_text())
    from adascale_rl.runtime.schema import FORMAT_VERSION

    doc["format_version"] = FORMAT_VERSION + 1
    (folder / "selector.json").write_text(json.dumps(doc))
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "format_version")


def test_selector_json_of_version_1_is_read_with_the_default_wake_up_spread(folder, caplog):
    """A folder exported before the wake-up spread existed (format 1, no wake_cv anywhere) still serves."""
    doc = json.loads((folder / "selector.json").read_text())
    doc["format_version"] = 1
    for key in ("wake_cv", "corun_stretch"):
        doc["device"].pop(key, None)
    table = (doc.get("policy") or {}).get("table")
    if table:
        for key in ("wake_cv", "corun_stretch"):
            table["scheduler"].pop(key, None)
    (folder / "selector.json").write_text(json.dumps(doc))
    sel = Selector.load(folder, monitor=FakeMonitor())
    assert sel.status == "ok", sel.status


def test_selector_json_of_version_2_is_read_without_the_co_runners_stretch(folder, caplog):
    """A folder exported before ``corun_stretch`` existed (format 2) serves, its table's scheduler taking 0."""
    doc = json.loads((folder / "selector.json").read_text())
    table = (doc.get("policy") or {}).get("table")
    assert table is None or table["scheduler"]["corun_stretch"] == 0.0  # this version writes it
    doc["format_version"] = 2
    doc["device"].pop("corun_stretch", None)
    if table:
        table["scheduler"].pop("corun_stretch")
    (folder / "selector.json").write_text(json.dumps(doc))
    sel = Selector.load(folder, monitor=FakeMonitor())
    assert sel.status == "ok", sel.status
    assert sel.select() in sel.ids


def test_a_folder_exported_on_earlier_dynamics_serves_with_one_warning(folder, caplog):
    """The environment's id names the dynamics' version the folder was exported on; another version keeps the
    policy (its check decisions replay) and says once that the predictions are this version's."""
    from adascale_rl.environment.spec import VERSION

    doc = json.loads((folder / "selector.json").read_text())
    current = doc["env"]["id"]
    assert current.endswith(f"-v{VERSION}")
    sel = Selector.load(folder, monitor=FakeMonitor())
    assert sel.status == "ok" and warnings_of(caplog) == []
    doc["env"]["id"] = current[: -len(str(VERSION))] + str(VERSION - 1)
    (folder / "selector.json").write_text(json.dumps(doc))
    old = Selector.load(folder, monitor=FakeMonitor())
    old.set_mode(rate_hz=8, deadline_ms=150)
    assert all(old.select() in old.ids for _ in range(2))  # it keeps deciding
    w = warnings_of(caplog)
    assert len(w) == 1 and doc["env"]["id"] in w[0] and current in w[0] and "fallback" not in w[0], w
    assert old.status == "ok" and old.load_error is None


def test_observation_layout_of_another_version(folder, caplog):
    doc = json.loads((folder / "selector.json").read_text())
    doc["observation"]["fields"][3]["name"] = "bg_load"
    (folder / "selector.json").write_text(json.dumps(doc))
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "observation layout of another version")


def test_policy_that_does_not_reproduce_its_check_decisions(folder, caplog):
    _rewrite_npz(folder, lambda a: a["check_logits"].__setitem__((0, 1), a["check_logits"][0, 1] + 50.0))
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "does not reproduce its own check")


@pytest.mark.parametrize("path", [("policy", "prior", "reward", "w_miss"), ("policy", "table", "latency_ms", 0)])
def test_a_number_that_overflows_the_prior_is_refused_with_one_warning_and_no_numpy_noise(folder, caplog, path):
    """A finite but absurd number passes the schema; the check decisions catch it, without RuntimeWarnings."""
    doc = json.loads((folder / "selector.json").read_text())
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = 1e308
    (folder / "selector.json").write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sel = Selector.load(folder, monitor=FakeMonitor())
    _expect_fallback(sel, caplog, "does not reproduce its own check")


def test_missing_selector_json_with_and_without_a_fallback_variant(tmp_path, caplog):
    sel = Selector.load(tmp_path, monitor=FakeMonitor(), fallback="mid")
    assert [sel.select(), sel.select()] == ["mid", "mid"]
    none = Selector.load(tmp_path, monitor=FakeMonitor())
    assert none.select() is None and none.variants == []
    w = warnings_of(caplog)
    assert len(w) == 2 and all("selector.json is missing" in m for m in w)
    assert "returns None" in w[1]


def test_corrupt_selector_json(folder, caplog):
    (folder / "selector.json").write_text('{"format": "adascale-selector", ')
    sel = Selector.load(folder, monitor=FakeMonitor(), fallback="small")
    assert [sel.select(), sel.select()] == ["small", "small"]
    w = warnings_of(caplog)
    assert len(w) == 1 and "cannot be read as JSON" in w[0]


def test_a_context_field_the_machine_cannot_read(folder, caplog):
    mon = FakeMonitor(mem_avail_mb=None)
    sel = Selector.load(folder, monitor=mon)
    _expect_fallback(sel, caplog, "cannot read mem_avail_mb")
    mon.fields["mem_avail_mb"] = 2000.0  # the reading comes back: the policy decides again
    sel.select()
    assert sel.status == "ok" and len(warnings_of(caplog)) == 1


def test_a_sensor_that_raises(folder, caplog):
    mon = FakeMonitor()
    mon.error = OSError("sensor unplugged")
    sel = Selector.load(folder, monitor=mon)
    _expect_fallback(sel, caplog, "sensor unplugged")
    assert mon.reads == 3
    mon.error = None
    sel.select()
    assert sel.status == "ok"


@pytest.mark.parametrize("field", ["bg_cpu_util", "freq_mhz", "soc_temp_c", "bg_runnable"])
def test_a_nan_in_the_context(folder, caplog, field):
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor(**{field: math.nan})), caplog, f"{field} is nan")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_observation_value(folder, caplog, bad):
    """The observation is checked as a whole too (an encoder value gone wrong, not a context field)."""
    sel = Selector.load(folder, monitor=FakeMonitor())
    encode = sel.encoder.encode_values

    def broken(*a, **k):
        obs = encode(*a, **k)
        obs[3] = bad
        return obs

    sel.encoder.encode_values = broken
    _expect_fallback(sel, caplog, "the observation holds NaN")
    sel.encoder.encode_values = encode
    sel.select()
    assert sel.status == "ok"


def test_a_nan_latency_report_is_ignored_with_one_warning(folder, caplog):
    sel = Selector.load(folder, monitor=FakeMonitor())
    sel.set_mode(rate_hz=8, deadline_ms=150)
    sel.select()
    for bad in (math.nan, math.inf, -1.0, math.nan):
        sel.report(bad)
    sel.report(50.0)
    sel.select()
    w = warnings_of(caplog)
    assert len(w) == 1 and "ignored" in w[0] and sel.status == "ok"
    assert sel._feedback.latency_ms == 50.0


def test_an_error_inside_the_policy(folder, caplog):
    sel = Selector.load(folder, monitor=FakeMonitor())
    decide = sel._decide

    def broken(obs, mask):
        raise RuntimeError("forward exploded")

    sel._decide = broken
    _expect_fallback(sel, caplog, "forward exploded")
    sel._decide = decide
    sel.select()
    assert sel.status == "ok"


def test_a_pickle_bomb_is_never_unpickled(folder, caplog, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    def plant(a):
        a["action_b"] = np.array([Payload()], dtype=object)

    _rewrite_npz(folder, plant)  # the sha256 updated too: an attacker controls the whole folder
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "pickled Python objects")
    assert not marker.exists()


def test_a_tampered_file_is_refused(folder, caplog):
    def nudge(a):
        a["action_w"][0, 0] += 1.0

    _rewrite_npz(folder, nudge, update_sha=False)
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "does not match its sha256")


def test_a_tampered_onnx_file_refuses_the_folder_even_for_the_numpy_backend(folder, caplog):
    with open(folder / "policy.onnx", "ab") as fh:
        fh.write(b"\x00")
    _expect_fallback(Selector.load(folder, monitor=FakeMonitor()), caplog, "policy.onnx does not match")


def test_onnxruntime_missing_means_the_numpy_forward(folder, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    sel = Selector.load(folder, monitor=FakeMonitor(), backend="onnxruntime")
    assert sel.backend == "numpy" and sel.select() in sel.variants and sel.status == "ok"
    w = warnings_of(caplog)
    assert len(w) == 1 and "onnxruntime is not installed" in w[0]


def test_onnx_runtime_backend_decides_as_numpy(folder):
    mon = FakeMonitor()
    a = Selector.load(folder, monitor=mon, backend="onnxruntime")
    b = Selector.load(folder, monitor=mon)
    assert (a.backend, b.backend) == ("onnxruntime", "numpy")
    for bg in np.linspace(0.0, 3.0, 7):
        mon.fields["bg_runnable"] = float(bg)
        for s in (a, b):
            s.set_mode(rate_hz=12, deadline_ms=90)
        assert a.select() == b.select()


# ------------------------------------------------------------------ the callback form

def test_the_callback_form_calls_the_app_when_the_decision_changes(folder):
    import threading

    mon = FakeMonitor()
    changes, seen = [], threading.Event()

    def on_change(v):
        changes.append(v)
        seen.set()

    sel = Selector.load(folder, monitor=mon)
    sel.set_mode(rate_hz=8, deadline_ms=150)
    with sel.start(on_change, period_s=0.01):
        assert seen.wait(5.0)
        for _ in range(5):
            sel.report(40.0)
    assert changes and changes[0] in sel.variants and mon.reads >= 1
    assert sel._thread is None  # stopped by the with block
