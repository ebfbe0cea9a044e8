"""Recorded traces carry no app columns; an environment with a workload lays the app's modes over them."""

from __future__ import annotations

import numpy as np

from adascale_rl import paths
from adascale_rl.context.generators import with_app_modes
from adascale_rl.context.scenarios import load_workload
from adascale_rl.context.traces import load_dataset
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.spec import find_spec


def test_recordings_get_the_workloads_modes_deterministically_and_files_are_untouched():
    ds = load_dataset(paths.traces_dir() / "host-recorded-v2")
    wl = load_workload("local-digits")
    assert all("request_rate_hz" not in t.data for ts in ds.splits.values() for t in ts)
    a, b = with_app_modes(ds, wl), with_app_modes(ds, wl)
    modes = {(m.request_rate_hz, m.deadline_ms) for m in wl.modes.values()}
    seen = set()
    for split in ds.splits:
        for t, ta, tb in zip(ds.splits[split], a.splits[split], b.splits[split]):
            assert np.array_equal(ta.data["request_rate_hz"], tb.data["request_rate_hz"])
            assert np.array_equal(ta.data["bg_cpu_util"], t.data["bg_cpu_util"])  # the context is kept
            pairs = set(zip(ta.data["request_rate_hz"].tolist(), ta.data["deadline_ms"].tolist()))
            assert pairs <= modes
            seen |= pairs
            assert "request_rate_hz" not in t.data  # the loaded dataset is not modified
    assert seen == modes  # over the shipped recordings every mode occurs
    # traces that have app columns (the simulated datasets) are left alone
    sim = load_dataset(paths.traces_dir() / "rpi4-sim-v2")
    over = with_app_modes(sim, wl)
    assert all(t is u for s in sim.splits for t, u in zip(sim.splits[s], over.splits[s]))


def test_local_environment_replays_the_modes_and_val_windows_match_their_train_traces():
    spec = find_spec("Local-Digits")
    assert spec.workload == "local-digits"
    train = AdaScaleEnv(spec, split="all")
    val = AdaScaleEnv(spec, split="val")
    rates = {x.request_rate_hz for ex in train.exo for x in ex}
    assert rates == {60.0, 400.0, 1000.0}
    # a val window is the last fifth of a train trace: the same modes at the same times
    for v in val.exo:
        tails = [ex[len(ex) - len(v):] for ex in train.exo]
        assert any([x.request_rate_hz for x in t] == [x.request_rate_hz for x in v] for t in tails)


def test_a_recording_gets_the_same_modes_however_it_is_given():
    spec = find_spec("Local-Digits")
    root = paths.traces_dir() / "host-recorded-v2"
    csv = sorted((root / "test").glob("*.csv"))[0]

    def rates(**kw):
        env = AdaScaleEnv(spec, **kw)
        return [x.request_rate_hz for x in env.exo[0]]

    in_dataset = rates(split="test")
    assert rates(split="test", dataset=str(root / "test")) == in_dataset
    assert rates(split="test", dataset=str(csv)) == in_dataset

