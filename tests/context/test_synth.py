"""The synthesizer: valid, deterministic, calibrated traces; recipes rebuild the shipped datasets byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from adascale_rl import cli, paths
from adascale_rl.context import schema
from adascale_rl.context.scenarios import load_recipe, load_scenario, load_workload, names
from adascale_rl.context.generators import segment
from adascale_rl.context.synth import (
    COLUMNS, DECIMALS, RUNNABLE_RULE, SynthError, add_trace, build_recipe, snap_to_ladder, synth_command, synthesize,
    synthesize_sequence,
)
from adascale_rl.context.traces import load_dataset
from adascale_rl.device.presets import load_device

DEVICES = ["rpi4", "jetson-nano", "pixel4"]
SCENARIOS = names("scenarios")
CASES = [(d, s) for d in DEVICES for s in SCENARIOS if not (s == "low-battery" and not load_device(d).has_battery)]


def test_all_documented_scenarios_exist():
    assert {"steady", "office", "gaming", "commute-hot", "low-battery", "mode-switch", "memory-pressure"} <= set(SCENARIOS)
    assert {f"{d}-vision" for d in DEVICES} <= set(names("workloads"))


@pytest.mark.parametrize("device,scenario", CASES)
def test_every_trace_is_valid_and_physical(device, scenario):
    dev = load_device(device)
    wl = load_workload(f"{device}-vision")
    for seed in (0, 7):
        d = synthesize(device, scenario, seed, 600)
        assert list(d) == COLUMNS == list(schema.NAMES)
        assert all(len(v) == 600 for v in d.values())
        assert np.array_equal(d["t_s"], np.arange(600.0))
        for name, values in d.items():
            f = schema.field(name)
            assert np.all(np.isfinite(values)) and values.min() >= f.low and values.max() <= f.high, name
        assert set(np.unique(d["freq_cap_mhz"])) <= set(dev.dvfs_mhz), "caps must be clocks on the ladder"
        assert d["mem_avail_mb"].min() >= 0 and d["mem_avail_mb"].max() <= dev.mem_total_mb
        modes = {(m.request_rate_hz, m.deadline_ms) for m in wl.modes.values()}
        assert set(zip(d["request_rate_hz"], d["deadline_ms"])) <= modes
        if not dev.has_battery:
            assert np.all(d["battery_pct"] == 100) and np.all(d["plugged"] == 1)
        else:
            assert set(np.unique(d["plugged"])) <= {0.0, 1.0}
            step = np.diff(d["battery_pct"])
            assert np.all(step <= 0) if d["plugged"][0] == 0 else np.all(step >= -0.01)


def _rule_tolerance(cores: int) -> float:
    """Half a unit of the last decimal written of bg_cpu_util, plus that of bg_runnable divided by the cores."""
    return 0.5 * 10.0 ** -DECIMALS["bg_cpu_util"] + 0.5 * 10.0 ** -DECIMALS["bg_runnable"] / cores + 1e-12


@pytest.mark.parametrize("device,scenario", CASES)
def test_run_queue_and_utilisation_follow_one_rule(device, scenario):
    """bg_runnable = unclipped demand x cores, bg_cpu_util = min(1, bg_runnable / cores): exactly before
    rounding, within the written decimals after."""
    dev, wl = load_device(device), load_workload(f"{device}-vision")
    sc = load_scenario(scenario)
    raw, _, _ = segment(dev, sc, wl, 3, 900, 1.0, "0", None, None)
    assert np.all(raw["bg_runnable"] >= 0)
    assert np.allclose(raw["bg_cpu_util"], np.minimum(1.0, raw["bg_runnable"] / dev.cores), rtol=0, atol=1e-12)
    for seed in (0, 7):
        d = synthesize(device, scenario, seed, 600)
        gap = np.abs(d["bg_cpu_util"] - np.minimum(1.0, d["bg_runnable"] / dev.cores))
        assert gap.max() <= _rule_tolerance(dev.cores), (seed, gap.max())
        below = d["bg_cpu_util"] < 1  # not saturated: the run queue is the utilisation in cores
        assert np.allclose(d["bg_runnable"][below], d["bg_cpu_util"][below] * dev.cores, rtol=0, atol=0.006)


def test_oversubscribed_cores_show_in_the_run_queue_only():
    """Gaming piles a game, voice chat and OS spikes on the cores: some steps demand more than all of them."""
    dev = load_device("rpi4")
    d = {k: np.concatenate([synthesize("rpi4", "gaming", seed, 1200)[k] for seed in range(3)])
         for k in ("bg_cpu_util", "bg_runnable")}
    over = d["bg_runnable"] > dev.cores + 0.05
    assert over.sum() >= 5, "gaming must oversubscribe the cores now and then"
    assert np.all(d["bg_cpu_util"][over] == 1.0), "bg_cpu_util saturates where bg_runnable goes on counting"
    assert d["bg_runnable"].max() < 2 * dev.cores, "and stays within what the scenario's components add up to"
    assert np.all(synthesize("rpi4", "steady", 1, 1200)["bg_runnable"] < dev.cores)


def test_same_seed_same_arrays_other_seed_differs():
    a = synthesize("pixel4", "office", 5, 300)
    b = synthesize("pixel4", "office", 5, 300)
    c = synthesize("pixel4", "office", 6, 300)
    for k in COLUMNS:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["bg_cpu_util"], c["bg_cpu_util"])
    assert not np.array_equal(a["mem_avail_mb"], c["mem_avail_mb"])


def test_same_seed_same_bytes_across_runs(tmp_path):
    """Two separate processes write the same files byte for byte; another seed writes other bytes."""
    outs = []
    for i, seed in enumerate((11, 11, 12)):
        out = tmp_path / f"d{i}" / "x-v1"
        r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "synth", "--device", "rpi4", "--scenario",
                            "office", "--seed", str(seed), "--duration", "300", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    for rel in files:
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel
    assert (outs[0] / "train/office-s11.csv").read_bytes() != (outs[2] / "train/office-s12.csv").read_bytes()
    # folders and files as open() and mkdir() make them under this umask (not tempfile's 0700 / 0600)
    umask = os.umask(0o022)
    os.umask(umask)
    assert outs[0].stat().st_mode & 0o777 == 0o777 & ~umask
    for rel in files:
        assert (outs[0] / rel).stat().st_mode & 0o777 == 0o666 & ~umask, rel


def test_scenarios_differ_as_described():
    mean_bg = {s: np.mean([synthesize("rpi4", s, k, 1200)["bg_cpu_util"].mean() for k in range(3)])
               for s in ("steady", "office", "gaming")}
    assert mean_bg["steady"] < 0.1 < mean_bg["office"] < mean_bg["gaming"]
    assert mean_bg["gaming"] > 0.4
    dev = load_device("rpi4")
    steady = np.concatenate([synthesize("rpi4", "steady", k, 900)["mem_avail_mb"] for k in range(3)])
    pressure = np.concatenate([synthesize("rpi4", "memory-pressure", k, 900)["mem_avail_mb"] for k in range(3)])
    assert steady.min() > 0.5 * dev.mem_total_mb
    assert pressure.min() < 230, "memory pressure must dip towards what the largest variants need"
    hot = [synthesize("rpi4", "commute-hot", k, 1200) for k in range(3)]
    assert max(h["ambient_temp_c"].max() for h in hot) > 40
    assert min(h["freq_cap_mhz"].min() for h in hot) < dev.f_max_mhz
    for s in ("steady", "office", "gaming", "memory-pressure"):
        assert np.all(synthesize("rpi4", s, 1, 600)["freq_cap_mhz"] == dev.f_max_mhz)


def test_app_modes_switch_in_every_scenario_but_steady():
    wl = load_workload("rpi4-vision")
    for scenario in ("mode-switch", "office"):
        d = synthesize("rpi4", scenario, 3, 1800)
        assert len(np.unique(d["request_rate_hz"])) >= 2 and len(np.unique(d["deadline_ms"])) >= 2, scenario
    default = wl.modes[wl.default_mode]
    o = synthesize("rpi4", "steady", 3, 600)
    assert np.all(o["request_rate_hz"] == default.request_rate_hz) and np.all(o["deadline_ms"] == default.deadline_ms)


def test_low_battery_needs_a_battery_and_drains_unplugged():
    with pytest.raises(SynthError, match="scenario 'low-battery' needs a device with a battery; rpi4 has none"):
        synthesize("rpi4", "low-battery", 0, 60)
    dev = load_device("pixel4")
    for seed in range(5):
        d = synthesize("pixel4", "low-battery", seed, 900)
        assert np.all(d["plugged"] == 0)
        assert np.all(np.diff(d["battery_pct"]) <= 0) and d["battery_pct"][-1] < d["battery_pct"][0]
        assert dev.saver_threshold_pct - 6 - 0.5 <= d["battery_pct"][0] <= dev.saver_threshold_pct + 4


def test_sequences_carry_the_battery_over():
    d = synthesize_sequence("pixel4", [("low-battery", 300), ("office", 300)], 4)
    assert len(d["t_s"]) == 600 and np.array_equal(d["t_s"], np.arange(600.0))
    assert abs(d["battery_pct"][300] - d["battery_pct"][299]) < 0.1
    assert d["battery_pct"][300] < 25


def test_other_periods_and_bad_requests():
    d = synthesize("jetson-nano", "office", 1, 60, period_s=0.5)
    assert len(d["t_s"]) == 120 and d["t_s"][1] == 0.5
    with pytest.raises(SynthError, match="shorter than one period"):
        synthesize("rpi4", "steady", 0, 0.2)
    with pytest.raises(SynthError, match="period must be a positive number"):
        synthesize("rpi4", "steady", 0, 10, period_s=0)
    with pytest.raises(SynthError, match="seed must be an integer"):
        synthesize("rpi4", "steady", -1, 10)
    with pytest.raises(SynthError, match="written for device 'pixel4', not 'rpi4'"):
        synthesize("rpi4", "steady", 0, 10, workload="pixel4-vision")


def test_snap_to_ladder():
    ladder = load_device("jetson-nano").dvfs_mhz
    assert snap_to_ladder(918, ladder) == 921  # the published 5 W cap, rounded differently in the ladder
    assert snap_to_ladder(1000, ladder) == 921
    assert snap_to_ladder(5000, ladder) == 1479 and snap_to_ladder(10, ladder) == 102


# --------------------------------------------------------------------------- workloads follow their design rule

def _clock_factor(c: float, f_max: float, cap: float) -> float:
    return (1 - c) + c * f_max / cap


def _scenario_caps(dev) -> list[float]:
    caps = []
    for s in SCENARIOS:
        clock = load_scenario(s).sections.get("clock")
        if clock:
            caps += [snap_to_ladder(f * dev.f_max_mhz, dev.dvfs_mhz) for f in clock["levels"]]
            caps.append(snap_to_ladder(clock["saver_level"].high * dev.f_max_mhz, dev.dvfs_mhz))
    return caps


@pytest.mark.parametrize("device", DEVICES)
def test_workload_deadlines_follow_the_design_rule(device):
    dev, wl = load_device(device), load_workload(f"{device}-vision")
    ref = {k: v.args[0] for k, v in wl.reference.items()}
    caps = _scenario_caps(dev)
    assert min(caps) == ref["lowest_cap_mhz"], "reference.lowest_cap_mhz must be the lowest cap a scenario sets"
    first_step_down = max(c for c in caps if c < dev.f_max_mhz)
    if dev.has_battery:
        first_step_down = max(first_step_down, dev.saver_cap_mhz)
    base = wl.modes[wl.default_mode]
    big, c = ref["largest_variant_ms"], ref["largest_compute_bound_frac"]
    assert big < base.deadline_ms <= 1000 / base.request_rate_hz, "largest meets the deadline when free and cool"
    assert big * 1.5 > base.deadline_ms, "... but not under a 1.5x co-run slowdown"
    assert big * _clock_factor(c, dev.f_max_mhz, first_step_down) > base.deadline_ms, "... nor one clock step down"
    worst = ref["fastest_variant_ms"] * ref["worst_slowdown"] * dev.f_max_mhz / ref["lowest_cap_mhz"]
    for m in wl.modes.values():
        assert worst < min(m.deadline_ms, 1000 / m.request_rate_hz), f"fastest must always meet mode {m.name}"


@pytest.mark.parametrize("device", DEVICES)
def test_workload_reference_matches_the_catalog(device):
    cat = paths.envs_dir() / "catalogs" / f"{device}.json"
    if not cat.exists():
        pytest.skip("no catalog for this device yet")
    variants = json.loads(cat.read_text())["variants"]
    ref = {k: v.args[0] for k, v in load_workload(f"{device}-vision").reference.items()}
    lat = [v["latency_ms"] for v in variants]
    assert ref["largest_variant_ms"] == pytest.approx(max(lat), rel=0.01)
    assert ref["fastest_variant_ms"] == pytest.approx(min(lat), rel=0.01)


def test_local_digits_workload_matches_the_measured_catalog_and_its_design_rule():
    variants = {v["id"]: v for v in json.loads((paths.envs_dir() / "catalogs" / "local-x86.json").read_text())["variants"]}
    wl = load_workload("local-digits")
    ref = {k: v.args[0] for k, v in wl.reference.items()}
    lat = [v["latency_ms"] for v in variants.values()]
    best = max(variants.values(), key=lambda v: (v["accuracy"], -v["latency_ms"]))
    assert ref["most_accurate_ms"] == pytest.approx(best["latency_ms"], abs=1e-3)
    assert ref["fastest_ms"] == pytest.approx(min(lat), abs=1e-3)
    for key, vid in (("full_int8_ms", "w1-final-r24-int8"), ("early_exit_ms", "w1-e2-r24-fp32"),
                     ("fast_int8_ms", "w1-e2-r16-int8")):
        assert ref[key] == pytest.approx(variants[vid]["latency_ms"], abs=1e-3)
    budget = {name: min(m.deadline_ms, 1000 / m.request_rate_hz) for name, m in wl.modes.items()}
    assert max(lat) < budget[wl.default_mode], "in the default mode every variant fits"
    for name, b in budget.items():
        assert min(lat) * 2.5 < b, f"the fastest meets mode {name} even in the worst spike"
        if name != wl.default_mode:
            assert max(lat) > b, f"in mode {name} not every variant fits"


# --------------------------------------------------------------------------- datasets

RECIPES = names("datasets")


def _without_column(csv_text: str, name: str) -> str:
    rows = [line.split(",") for line in csv_text.splitlines()]
    i = rows[0].index(name)
    return "".join(",".join(r[:i] + r[i + 1:]) + "\n" for r in rows)


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_dataset_is_rebuilt_byte_for_byte(recipe, tmp_path):
    """A recipe rebuilds its shipped dataset exactly.

    Datasets shipped before ``bg_runnable`` existed (their schema.json does not list it) are
    compared with that column, its schema.json entry and its how_made sentence taken out of the
    rebuild, and without MANIFEST (whose digests cover the new column): every other byte must
    still match, which shows the new column shifted no random stream and changed no value. Once
    they are regenerated, the whole-file comparison applies again by itself.
    """
    rc = load_recipe(recipe)
    shipped = paths.traces_dir() / f"{rc.name}-v{rc.version}"
    assert shipped.is_dir(), f"{shipped} is not shipped; build it with adascale-rl synth --recipe"
    out = build_recipe(recipe, tmp_path / shipped.name, progress=False)
    files = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    before_runnable = "bg_runnable" not in [c["name"] for c in json.loads((shipped / "schema.json").read_text())["columns"]]
    rule = RUNNABLE_RULE.format(cores=load_device(rc.device).cores)
    for rel in files:
        if rel == "schema.json":  # 'inputs' records digests of the YAML files, comments included
            a, b = (json.loads((r / rel).read_text()) for r in (shipped, out))
            a.pop("inputs"), b.pop("inputs")
            assert {"name": "bg_runnable", "unit": "threads"} in b["columns"] and rule in b["how_made"]
            if before_runnable:
                b["columns"].remove({"name": "bg_runnable", "unit": "threads"})
                b["how_made"] = b["how_made"].replace(rule + " ", "", 1)
            assert a == b
        elif before_runnable and rel == "MANIFEST":
            continue  # load_dataset verifies the shipped MANIFEST (test_shipped_dataset_splits_are_honest)
        elif before_runnable and rel.endswith(".csv"):
            assert (shipped / rel).read_text() == _without_column((out / rel).read_text(), "bg_runnable"), rel
        else:
            assert (shipped / rel).read_bytes() == (out / rel).read_bytes(), rel


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_dataset_splits_are_honest(recipe):
    rc = load_recipe(recipe)
    ds = load_dataset(paths.traces_dir() / f"{rc.name}-v{rc.version}")
    assert ds.meta["source"] == "simulated" and ds.device == rc.device and ds.period_s == 1.0
    files = ds.meta["files"]
    train_seeds = {files[f"train/{Path(t.name).name}"]["seed"] for t in ds.train}
    test_seeds = {files[f"test/{Path(t.name).name}"]["seed"] for t in ds.test}
    assert not train_seeds & test_seeds
    train_scen = {files[f"train/{Path(t.name).name}"]["scenario"] for t in ds.train}
    test_scen = {files[f"test/{Path(t.name).name}"]["scenario"] for t in ds.test}
    assert test_scen - train_scen, "test must hold mixes not seen in train"
    assert set(SCENARIOS) - {"low-battery"} <= train_scen
    assert all(600 <= len(t) <= 1200 for t in ds.train)
    assert "seeds not used in train" in ds.meta["how_made"]


def test_recipes_refuse_test_seeds_used_in_train(tmp_path):
    from adascale_rl.context.scenarios import parse_recipe

    rc = parse_recipe({"name": "x", "device": "rpi4", "description": "d", "files": [
        {"split": "train", "scenario": "steady", "seed": 1, "duration_s": 10},
        {"split": "test", "scenario": "office", "seed": 1, "duration_s": 10}]})
    with pytest.raises(SynthError, match="test file office-s1 uses seed 1, which train uses too"):
        build_recipe(rc, tmp_path / "x-v1", progress=False)


def test_add_trace_creates_then_appends(tmp_path):
    out = tmp_path / "mine-v4"
    add_trace(out, "pixel4", "gaming", 1, 120, 1.0)
    first = (out / "train" / "gaming-s1.csv").read_bytes()
    add_trace(out, "pixel4", "low-battery", 2, 60, 1.0, split="test")
    assert (out / "train" / "gaming-s1.csv").read_bytes() == first, "adding a file must not rewrite the others"
    ds = load_dataset(out)
    assert ds.name == "mine-v4" and [len(t) for t in ds.train + ds.test] == [120, 60]
    assert ds.meta["files"]["test/low-battery-s2.csv"] == {"scenario": "low-battery", "seed": 2, "duration_s": 60.0}
    assert "--scenario low-battery --seed 2" in ds.meta["how_made"]
    assert {"name": "bg_runnable", "unit": "threads"} in ds.meta["columns"]
    assert "bg_cpu_util = min(1, bg_runnable / 4)" in ds.meta["how_made"]
    assert all(t.has("bg_runnable") for t in ds.train + ds.test)
    with pytest.raises(SynthError, match="already exists"):
        add_trace(out, "pixel4", "gaming", 1, 120, 1.0)
    with pytest.raises(SynthError, match="for pixel4; add to a simulated rpi4 dataset"):
        add_trace(out, "rpi4", "gaming", 3, 120, 1.0)
    with pytest.raises(SynthError, match="has period 1 s, not 2 s"):
        add_trace(out, "pixel4", "gaming", 3, 120, 2.0)


def _args(**kw):
    base = dict(device=None, scenario=None, seed=0, duration=600.0, period=1.0, split="train", out=None,
                workload=None, recipe=None, list=False, no_progress=True)
    base.update(kw)
    return SimpleNamespace(**base)


def test_synth_command(tmp_path, capsys):
    assert synth_command(_args(list=True)) == 0
    text = capsys.readouterr().out
    assert "memory-pressure" in text and "rpi4-vision" in text and "recipes:   jetson-nano-sim, pixel4-sim, rpi4-sim" in text
    assert synth_command(_args(device="rpi4", scenario="steady", duration=30, out=str(tmp_path / "a-v1"))) == 0
    assert "1 train + 0 test traces, 30 rows at 1 s" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["synth", "--scenario", "office", "--out", "X"], "--device is required (or give --recipe)"),
    (["synth", "--device", "rpi4", "--scenario", "office"], "--out is required"),
    (["synth", "--device", "rpi5", "--scenario", "office", "--out", "X"], "unknown device 'rpi5'"),
    (["synth", "--device", "rpi4", "--scenario", "beach", "--out", "X"], "unknown scenario 'beach'; known: "),
    (["synth", "--device", "rpi4", "--scenario", "low-battery", "--out", "X"],
     "scenario 'low-battery' needs a device with a battery; rpi4 has none"),
    (["synth", "--device", "rpi4", "--scenario", "office", "--duration", "0", "--out", "X"],
     "--duration must be a positive number"),
    (["synth", "--recipe", "nope.yaml", "--out", "X"], "unknown dataset 'nope.yaml'"),
    (["synth", "--recipe", "rpi4-sim", "--device", "pixel4", "--seed", "3", "--out", "X"],
     "--device, --seed do not apply to --recipe"),
])
def test_synth_cli_errors_are_one_sentence(tmp_path, capsys, argv, message):
    argv = [a if a != "X" else str(tmp_path / "o-v1") for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("adascale-rl synth: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "o-v1").exists()


def test_every_name_synth_list_prints_works_from_another_folder(tmp_path, monkeypatch):
    res = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "synth", "--list"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    listed = {line.split(":", 1)[0].strip(): line.split(":", 1)[1] for line in res.stdout.splitlines()
              if not line.startswith("  ")}
    recipes = [n.strip() for n in listed["recipes"].split("(")[0].split(",")]
    assert recipes == names("datasets") and "/" not in listed["recipes"]
    monkeypatch.chdir(tmp_path)  # nothing of the repository here
    for n in recipes:
        assert load_recipe(n).path.stem == n
    for n in [d.strip() for d in listed["devices"].split(",")]:
        from adascale_rl.device.presets import load_device
        assert load_device(n).name == n
    for n in [w.strip() for w in listed["workloads"].split(",")]:
        assert load_workload(n).name == n
