"""`adascale-rl calibrate`: the scheduler constants of a profiled machine re-measured, written as a copy of the spec
and the preset that differs from the originals in them only; refused, before any timing, where it cannot run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from adascale_rl import paths
from adascale_rl.device.presets import load_preset_file
from adascale_rl.elastic.calibrate import (FITTED, CalibrateError, merge_samples, pick_variants, previous_runs,
                                           service_drift)
from adascale_rl.elastic.contention import (fit_idle_wake, fit_scheduler, fit_wake_cv, fit_wake_line, line_cost,
                                             samples_from_json, samples_to_json, variant_speeds, variant_wake_scales,
                                             wake_excess, wake_factors, wake_spread)
from _specs import copy_of_spec
from adascale_rl.environment.spec import load_spec


def _cli(*args, env=None, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "adascale_rl.cli", "calibrate", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def test_variants_are_spread_over_the_latency_range():
    lat = {f"v{i}": float(i) for i in range(10)}
    assert pick_variants(lat, 3) == ["v0", "v4", "v9"] or pick_variants(lat, 3) == ["v0", "v5", "v9"]
    assert pick_variants(lat, 2) == ["v0", "v9"]
    assert pick_variants(lat, 50) == [f"v{i}" for i in range(10)]
    with pytest.raises(CalibrateError, match="at least 2"):
        pick_variants(lat, 1)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_calibrate_rewrites_only_the_scheduler_constants_and_the_hosts_speed(profiled, tmp_path):
    spec_file = profiled.out / "MyHost-Digits.yaml"
    env = {**os.environ, "ADASCALE_RL_CACHE": str(profiled.cache)}
    # never over the spec and preset it reads
    r = _cli("--env", str(spec_file), "--out", str(profiled.out), "--quick", "--no-progress", env=env)
    assert r.returncode == 2 and "over the file it re-measures" in r.stderr, r.stderr
    out = tmp_path / "now"
    r = _cli("--env", str(spec_file), "--out", str(out), "--quick", "--variants", "2", "--rounds", "2",
             "--no-progress", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| constant | before | now |" in r.stdout and f"--env {out / 'MyHost-Digits.yaml'}" in r.stdout
    assert "back-to-back service / catalog latency: median" in r.stdout

    old_spec, new_spec = load_spec(spec_file), load_spec(out / "MyHost-Digits.yaml")
    assert new_spec.id == old_spec.id
    assert new_spec.catalog == str(old_spec.catalog_path().resolve())  # the same catalog, not a copy
    assert new_spec.dataset_path() == old_spec.dataset_path() and new_spec.workload == old_spec.workload
    (device,) = (out / "devices").glob("*.yaml")
    assert new_spec.device == str(device.resolve())
    old_doc = yaml.safe_load(open(old_spec.device))
    new_doc = yaml.safe_load(open(device))
    assert set(new_doc) == set(old_doc) | {"service_scale"}
    for key in set(old_doc) - set(FITTED):
        assert new_doc[key] == old_doc[key], key
    # the host's speed against the catalog, this run's: what the summary printed, and what the simulator reads
    scale = new_doc["service_scale"]
    assert 0.2 < scale["value"] < 5.0 and "back-to-back service" in scale["source"], scale
    assert f"| service_scale | 1 | {scale['value']:.4g} |" in r.stdout, r.stdout
    assert load_preset_file(device).service_scale == scale["value"]
    measured = [key for key in FITTED if "source" in new_doc[key]]
    assert measured, new_doc  # two rounds of the quick design fit at least one constant
    for key in FITTED:  # re-measured (and said when), or kept and said so
        entry = new_doc[key]
        said = entry.get("source") or entry.get("derived")
        assert "adascale-rl calibrate at" in said, said
        if "source" not in entry:
            assert entry["value"] == old_doc[key]["value"] and said.startswith("kept from")
    load_preset_file(device)
    # the profiled spec and its preset are untouched
    assert yaml.safe_load(open(old_spec.device)) == old_doc
    assert "fitted on this run" in r.stdout and len(list((out / "samples").glob("*.json"))) == 1

    # a second run pools its samples with the first's; --fresh fits on its own and keeps both
    time.sleep(1.1)  # the samples files are named by the second
    r2 = _cli("--env", str(spec_file), "--out", str(out), "--quick", "--variants", "2", "--rounds", "2",
              "--no-progress", env=env)
    assert r2.returncode == 0 and "fitted on 2 runs pooled" in r2.stdout, r2.stdout + r2.stderr[-2000:]
    assert len(list((out / "samples").glob("*.json"))) == 2
    pooled = yaml.safe_load(open(device))
    assert any("samples of 2 calibration runs" in pooled[k].get("source", "") for k in FITTED), pooled

    # --refit times nothing: the same fit from the saved samples (the two runs pooled, the newest's host speed)
    r3 = _cli("--env", str(spec_file), "--out", str(out), "--refit", "--no-progress", env=env)
    assert r3.returncode == 0 and "fitted on 2 runs pooled" in r3.stdout, r3.stdout + r3.stderr[-2000:]
    assert "nothing is timed" in r3.stdout + r3.stderr
    assert len(list((out / "samples").glob("*.json"))) == 2
    refit = yaml.safe_load(open(device))
    for key in FITTED + ("service_scale",):
        assert refit[key]["value"] == pooled[key]["value"], key


@pytest.mark.parametrize("args, words", [
    (["--env", "Rpi4-Vision", "--out", "{tmp}/x"], "was not profiled on a machine"),
    (["--env", "Local-Digits", "--out", "{envs}"], "inside the shipped data"),
    (["--env", "Local-Digits", "--out", "{tmp}/x", "--variants", "1"], "at least 2"),
    (["--env", "Local-Digits", "--out", "{tmp}/x", "--rounds", "0"], "--rounds must be a positive integer"),
    (["--env", "Local-Digits", "--out", "{tmp}/x", "--refit"], "no saved samples"),
    (["--env", "Nope", "--out", "{tmp}/x"], "Nope"),
])
def test_calibrate_refuses_before_any_timing(tmp_path, args, words):
    args = [a.format(tmp=tmp_path, envs=paths.envs_dir()) for a in args]
    before = sorted(p.name for p in paths.envs_dir().rglob("*"))
    r = _cli(*args, "--no-progress", env={**os.environ, "ADASCALE_RL_CACHE": str(tmp_path / "cache")}, timeout=120)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert not (tmp_path / "x").exists() and sorted(p.name for p in paths.envs_dir().rglob("*")) == before


def test_calibrate_refuses_a_file_for_out_and_another_machines_preset(tmp_path):
    (tmp_path / "f").write_text("x")
    r = _cli("--env", "Local-Digits", "--out", str(tmp_path / "f"), "--no-progress", timeout=120)
    assert r.returncode == 2 and "is a file" in r.stderr and (tmp_path / "f").read_text() == "x", r.stderr
    other = copy_of_spec(tmp_path / "big", cores=64)
    r = _cli("--env", str(other), "--out", str(tmp_path / "x"), "--no-progress", timeout=120)
    assert r.returncode == 2 and "has 64 cores and this process may run on" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()


def _samples(b2b, resp, levels=(0, 4)):
    cell = {"b2b": list(b2b), "svc": list(resp), "resp": list(resp), "issued": len(resp), "served": len(resp)}
    return {"_meta": {"levels": list(levels), "rounds": 1, "calls": 3, "rate_hz": 60.0, "duration_s": 1.0,
                      "threads": 1, "cores": 2, "quiet_rates": [400.0]},
            "v1": {"levels": {lv: dict(cell) for lv in levels}, "quiet": {400.0: dict(cell, b2b=[])}}}


def test_runs_of_the_same_design_are_pooled_and_others_left_out(tmp_path):
    a, b = _samples([1.0, 1.1], [2.0]), _samples([1.2], [2.5, 2.6])
    m = merge_samples([a, b])
    assert m["_meta"]["rounds"] == 2
    assert m["v1"]["levels"][0]["b2b"] == [1.0, 1.1, 1.2] and m["v1"]["levels"][4]["resp"] == [2.0, 2.5, 2.6]
    assert m["v1"]["quiet"][400.0]["served"] == 3 and a["v1"]["levels"][0]["b2b"] == [1.0, 1.1]  # inputs unchanged
    assert service_drift(m, {"v1": 1.0}) == pytest.approx({"v1": 1.1})  # median back to back at no load / latency

    folder = tmp_path / "samples"
    folder.mkdir()
    design = (tuple(a["_meta"]["levels"]), 60.0, (400.0,), 1, 2)
    (folder / "1.json").write_text(json.dumps({"env": "AdaScale/X-v2", "catalog_key": "k", "measured_at": "t1", "samples": samples_to_json(a)}))
    (folder / "2.json").write_text(json.dumps({"env": "AdaScale/Y-v2", "catalog_key": "k", "measured_at": "t2", "samples": samples_to_json(b)}))
    other = _samples([1.0], [2.0], levels=(0, 2))
    (folder / "3.json").write_text(json.dumps({"env": "AdaScale/X-v2", "catalog_key": "k", "measured_at": "t3", "samples": samples_to_json(other)}))
    (folder / "4.json").write_text("{not json")
    (folder / "5.json").write_text(json.dumps({"env": "AdaScale/X-v2", "catalog_key": "other", "measured_at": "t5",
                                               "samples": samples_to_json(a)}))
    said = []
    runs = previous_runs(folder, "AdaScale/X-v2", "k", design, log=said.append)
    assert [when for when, _ in runs] == ["t1"]
    assert runs[0][1]["v1"]["levels"][4]["resp"] == [2.0] and runs[0][1]["v1"]["quiet"][400.0]["served"] == 1
    assert len(said) == 4 and any("4.json" in s and "not a calibration run" in s for s in said)
    assert any("5.json" in s and "catalog" in s for s in said)


def test_a_fit_on_saved_and_pooled_samples_is_the_fit_on_the_samples():
    """The JSON round trip keeps every sample a fit reads, and pooling two halves gives the whole's fit."""
    rng = np.random.default_rng(0)

    def run(n):
        s = {"_meta": {"levels": [0, 4], "rounds": 1, "calls": n, "rate_hz": 60.0, "duration_s": 1.0, "threads": 1,
                       "cores": 2, "quiet_rates": [400.0]}}
        for vid, lat in (("a", 0.5), ("b", 2.0)):
            b2b = list(lat + 0.01 * rng.random(n))
            wake = list(lat + 0.6 + 0.1 * lat + 0.05 * rng.random(n))
            waits = list(np.asarray(wake) + np.where(rng.random(n) < 0.3, 3.0, 0.0))
            s[vid] = {"levels": {0: {"b2b": b2b, "svc": wake, "resp": wake, "issued": n, "served": n},
                                 4: {"b2b": b2b, "svc": wake, "resp": waits, "issued": n, "served": n}},
                      "quiet": {400.0: {"b2b": [], "svc": list(lat + 0.25 + 0.0 * rng.random(n)),
                                        "resp": list(lat + 0.25 + 0.01 * rng.random(n)), "issued": n, "served": n}}}
        return s

    lat = {"a": 0.5, "b": 2.0}
    one, two = run(40), run(40)
    whole = fit_scheduler(merge_samples([one, two]), lat, 2, 1)
    assert {"idle_wake_ms", "idle_wake_per_ms", "idle_sleep_ms"} <= set(whole)
    assert whole["idle_wake_ms"][0] == pytest.approx(0.625, abs=0.03)  # 0.6 + the noise's mean
    saved = [samples_from_json(json.loads(json.dumps(samples_to_json(s)))) for s in (one, two)]
    again = fit_scheduler(merge_samples(saved), lat, 2, 1)
    assert {k: v[0] for k, v in again.items()} == pytest.approx({k: v[0] for k, v in whole.items()}, abs=1e-3)


def test_the_co_runners_stretch_is_fitted_where_busy_processes_leave_the_app_its_cores():
    """``fit_corun``: the median over variants of (back to back beside 1 busy process / quiet - 1) on 2 cores, per
    share of the free core; a level that time-shares a core (4 busy) is not read; none on a machine the app's threads
    fill, or without such a level; a negative median is held at 0; fit_scheduler carries it."""
    from adascale_rl.elastic.contention import fit_corun

    def cells(quiet, busy1, busy4):
        return {0: {"b2b": [quiet] * 30, "svc": [], "resp": [], "issued": 0, "served": 0},
                1: {"b2b": [busy1] * 30, "svc": [], "resp": [], "issued": 0, "served": 0},
                4: {"b2b": [busy4] * 30, "svc": [], "resp": [], "issued": 0, "served": 0}}

    s = {"_meta": {"levels": [0, 1, 4], "rate_hz": 60.0, "quiet_rates": []},
         "a": {"levels": cells(1.0, 1.1, 9.0), "quiet": {}}, "b": {"levels": cells(2.0, 2.5, 9.0), "quiet": {}},
         "c": {"levels": cells(4.0, 4.8, 9.0), "quiet": {}}}
    value, how = fit_corun(s, 2, 1)
    assert value == pytest.approx(0.2) and "median over 3" in how and "1 of 2 cores" in how
    assert fit_corun(s, 2, 1, ["a"])[0] == pytest.approx(0.1)
    assert fit_corun(s, 2, 2) is None  # two app threads fill both cores: every busy process time-shares one
    assert fit_corun({**s, "_meta": {**s["_meta"], "levels": [0, 4]}}, 2, 1) is None
    # on 8 cores 1 busy process keeps a seventh of the 7 free cores busy (and 4 busy processes time-share none)
    assert fit_corun({**s, "_meta": {**s["_meta"], "levels": [0, 1]}}, 8, 1)[0] == pytest.approx(0.2 * 7)
    assert "pairs" in fit_corun(s, 8, 1)[1] and "1, 4 of 8 cores" in fit_corun(s, 8, 1)[1]
    faster = {**s, "a": {"levels": cells(1.0, 0.9, 9.0), "quiet": {}}, "b": {"levels": cells(2.0, 1.9, 9.0), "quiet": {}}}
    value, how = fit_corun(faster, 2, 1)
    assert value == 0.0 and "held at 0" in how


def test_a_refit_fits_the_saved_samples_at_their_speed_on_their_machine(tmp_path):
    """--refit on samples saved for the shipped Local-Digits catalog (written here, nothing timed): the newest run's
    host speed is written, the header says it was a refit; a ratio no host has is not used, and says why; samples
    of another core count are refused."""
    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.elastic.calibrate import catalog_key, run_calibrate
    from adascale_rl.environment.spec import find_spec

    spec = find_spec("Local-Digits")
    cat = load_catalog(spec.catalog_path())
    lat = {v.id: v.latency_ms for v in cat.variants}
    ids = pick_variants(lat, 4)
    rng = np.random.default_rng(1)

    def save(stamp, factor, cores=2, n=40):
        s = {"_meta": {"levels": [0, 4], "rounds": 1, "calls": n, "rate_hz": 60.0, "duration_s": 1.0, "threads": 1,
                       "cores": cores, "quiet_rates": [400.0]}}
        for v in ids:
            service = lat[v] * factor
            b2b = list(service * (1.0 + 0.01 * rng.random(n)))
            wake = service + 0.6 + 0.1 * service + 0.05 * rng.random(n)
            waits = wake + np.where(rng.random(n) < 0.3, 3.0, 0.0)
            s[v] = {"levels": {0: {"b2b": b2b, "svc": list(wake), "resp": list(wake), "issued": n, "served": n},
                               4: {"b2b": b2b, "svc": list(wake), "resp": list(waits), "issued": n, "served": n}},
                    "quiet": {400.0: {"b2b": [], "svc": list(service + 0.25 + 0.01 * rng.random(n)),
                                      "resp": list(service + 0.25 + 0.01 * rng.random(n)), "issued": n, "served": n}}}
        (tmp_path / "samples").mkdir(exist_ok=True)
        (tmp_path / "samples" / f"{stamp}.json").write_text(json.dumps(
            {"env": spec.id, "catalog": cat.name, "catalog_key": catalog_key(cat), "measured_at": stamp,
             "samples": samples_to_json(s)}))

    said = []
    save("20261201-000001", 1.5)
    res = run_calibrate("Local-Digits", tmp_path, refit=True, log=said.append)
    assert res["refit"] and res["runs"] == ["20261201-000001"] and any("nothing is timed" in m for m in said)
    assert res["service_scale"] == pytest.approx(1.5, rel=0.01)
    assert load_preset_file(res["device"]).service_scale == res["service_scale"]
    assert "refitted at" in res["device"].read_text()
    save("20261201-000002", 40.0)  # the newest run, at a speed no host has
    res = run_calibrate("Local-Digits", tmp_path, refit=True, fresh=True, log=said.append)
    assert res["service_scale"] is None and res["runs"] == ["20261201-000002"]
    assert "implausible ratio" in res["device"].read_text() and load_preset_file(res["device"]).service_scale == 1.0
    save("20261201-000003", 1.2, cores=4)
    with pytest.raises(CalibrateError, match="measured on 4 cores"):
        run_calibrate("Local-Digits", tmp_path, refit=True, log=said.append)


def test_a_calibration_whose_rounds_ran_at_different_speeds_says_so(tmp_path):
    """Saved samples of two rounds (nothing timed): the second round's quiet back-to-back service 1.5x the first's
    gives one warning naming the spread and a note in service_scale's source; rounds at one speed give neither."""
    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.elastic.calibrate import catalog_key, run_calibrate
    from adascale_rl.elastic.contention import add_cell, speed_spread
    from adascale_rl.environment.spec import find_spec

    spec = find_spec("Local-Digits")
    cat = load_catalog(spec.catalog_path())
    lat = {v.id: v.latency_ms for v in cat.variants}
    ids = pick_variants(lat, 4)
    rng = np.random.default_rng(3)

    def save(folder, second_round, stamp="20261203-000001", n=40):
        s = {"_meta": {"levels": [0, 4], "rounds": 2, "calls": n, "rate_hz": 60.0, "duration_s": 1.0, "threads": 1,
                       "cores": 2, "quiet_rates": [400.0]}}
        for v in ids:
            s[v] = {"levels": {}, "quiet": {}}
            for factor in (1.5, 1.5 * second_round):  # one round, then the other
                service = lat[v] * factor
                b2b = list(service * (1.0 + 0.01 * rng.random(n)))
                wake = list(service + 0.6 + 0.1 * service + 0.05 * rng.random(n))
                for lv in (0, 4):
                    add_cell(s[v]["levels"], lv, {"b2b": b2b, "svc": wake, "resp": wake, "issued": n, "served": n},
                             per_round=True)
                add_cell(s[v]["quiet"], 400.0, {"b2b": [], "svc": [service + 0.25] * n,
                                                "resp": [service + 0.25] * n, "issued": n, "served": n},
                         per_round=True)
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "samples" / f"{stamp}.json").write_text(json.dumps(
            {"env": spec.id, "catalog": cat.name, "catalog_key": catalog_key(cat), "measured_at": stamp,
             "samples": samples_to_json(s)}))
        return s

    s = save(tmp_path / "moved", 1.5)
    assert len(speed_spread(s)) == 4 and all(1.45 < x < 1.55 for x in speed_spread(s).values())
    said = []
    res = run_calibrate("Local-Digits", tmp_path / "moved", refit=True, log=said.append)
    warned = [m for m in said if m.startswith("warning: the service moved between this run's rounds")]
    assert len(warned) == 1 and "1.5" in warned[0], said
    assert "rounds 1.50x apart" in yaml.safe_load(res["device"].read_text())["service_scale"]["source"]
    # the spread is this run's: an earlier run that moved, pooled for the fit, does not make a steady one warn
    save(tmp_path / "steady", 1.0, stamp="20261203-000002")
    said = []
    res = run_calibrate("Local-Digits", tmp_path / "steady", refit=True, log=said.append)
    assert not any(m.startswith("warning") for m in said)
    assert res["speed_spread"] and all(x < 1.05 for x in res["speed_spread"].values())
    save(tmp_path / "steady", 1.5, stamp="20261203-000001")  # now the earlier run of the two moved
    said = []
    res = run_calibrate("Local-Digits", tmp_path / "steady", refit=True, log=said.append)
    assert len(res["runs"]) == 2 and not any(m.startswith("warning") for m in said)


def test_a_stretch_probed_at_other_threads_than_the_catalogs_is_not_written(tmp_path):
    """Saved samples at 1 thread whose back-to-back service beside 1 busy process is 1.2x the quiet one: written as
    corun_stretch 0.2 for the shipped catalog (1 thread), but not for a catalog whose app runs 2 threads (the
    cores the probe left free are not the app's), and the calibration says why."""
    from dataclasses import replace

    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.device.presets import load_device
    from adascale_rl.elastic.calibrate import catalog_key, prepare, run_calibrate
    from adascale_rl.environment.spec import find_spec

    spec = find_spec("Local-Digits")
    cat = load_catalog(spec.catalog_path())
    lat = {v.id: v.latency_ms for v in cat.variants}
    ids = pick_variants(lat, 4)
    rng = np.random.default_rng(4)
    n = 40
    s = {"_meta": {"levels": [0, 1, 4], "rounds": 1, "calls": n, "rate_hz": 60.0, "duration_s": 1.0, "threads": 1,
                   "cores": 2, "quiet_rates": [400.0]}}
    for v in ids:
        service = lat[v] * 1.5
        b2b = service * (1.0 + 0.01 * rng.random(n))
        wake = list(service + 0.6 + 0.1 * service + 0.05 * rng.random(n))
        cell = {"svc": wake, "resp": wake, "issued": n, "served": n}
        s[v] = {"levels": {0: dict(cell, b2b=list(b2b)), 1: dict(cell, b2b=list(1.2 * b2b)), 4: dict(cell, b2b=list(b2b))},
                "quiet": {400.0: {"b2b": [], "svc": [service + 0.25] * n, "resp": [service + 0.25] * n, "issued": n,
                                  "served": n}}}
    for folder in ("one", "two"):
        (tmp_path / folder / "samples").mkdir(parents=True)
        (tmp_path / folder / "samples" / "20261203-000001.json").write_text(json.dumps(
            {"env": spec.id, "catalog": cat.name, "catalog_key": catalog_key(cat), "measured_at": "20261203-000001",
             "samples": samples_to_json(s)}))
    # a refit fits at the samples' threads, whatever --threads says
    res = run_calibrate("Local-Digits", tmp_path / "one", refit=True, threads=2, log=lambda m: None)
    assert res["fitted"]["corun_stretch"][0] == pytest.approx(0.2, abs=0.01) and not res["not_fitted"]
    assert load_preset_file(res["device"]).corun_stretch == pytest.approx(0.2, abs=0.01)
    p = prepare("Local-Digits", tmp_path / "two", refit=True)
    p["catalog"] = replace(p["catalog"], threads=2)
    said = []
    res = run_calibrate("Local-Digits", tmp_path / "two", refit=True, log=said.append, prepared=p)
    assert "corun_stretch" not in res["fitted"] and "catalog's app runs 2" in res["not_fitted"]["corun_stretch"]
    assert any(m.startswith("corun_stretch not refitted: probed at 1 thread(s)") for m in said), said
    assert load_preset_file(res["device"]).corun_stretch == load_device("local-x86").corun_stretch
    written = yaml.safe_load(res["device"].read_text())["corun_stretch"]
    assert "did not use its fit: probed at 1 thread(s)" in written["derived"]
    assert "(not corun_stretch: see its entry)" in res["device"].read_text()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_sigterm_stops_calibrate_and_every_process_it_started(profiled, tmp_path):
    """SIGTERM mid-measurement: the busy processes and the probe are stopped, nothing half-fitted is written."""
    import psutil

    from _procs import interrupt_when

    out = tmp_path / "now"
    p = subprocess.Popen([sys.executable, "-m", "adascale_rl.cli", "calibrate", "--env",
                          str(profiled.out / "MyHost-Digits.yaml"), "--out", str(out), "--quick", "--variants", "2",
                          "--rounds", "3", "--no-progress"], env={**os.environ, "ADASCALE_RL_CACHE": str(profiled.cache)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()

    def loaded() -> bool:  # busy processes beside the probe: the measurement is under way
        try:
            now = {c.pid for c in psutil.Process(p.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return False
        children.update(now)
        return len(now) >= 3

    err = interrupt_when(p, loaded, signal.SIGTERM)
    assert p.returncode == 130 and "interrupted" in err, err[-2000:]
    assert len(children) >= 3
    time.sleep(0.5)
    alive = [c for c in children if psutil.pid_exists(c) and psutil.Process(c).status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive
    assert not list((out / "samples").glob("*.json")) and not list((out / "devices").glob("*.yaml"))


def test_the_wake_up_cost_line_is_fitted_with_neither_coefficient_negative():
    lat = np.array([0.2, 0.8, 1.5, 3.0, 6.0])
    w0, w1, rms = fit_idle_wake(lat, 0.4 + 0.1 * lat)
    assert (w0, w1, rms) == (pytest.approx(0.4), pytest.approx(0.1), pytest.approx(0.0, abs=1e-9))
    # a cost that falls with the service (a noisy probe): a constant, the mean, not a clipped free fit
    falling = np.array([2.0, 1.9, 1.6, 1.4, 1.1])
    w0, w1, rms = fit_idle_wake(lat, falling)
    assert w1 == 0.0 and w0 == pytest.approx(falling.mean()) and rms == pytest.approx(falling.std())
    # a cost that starts below zero at no service: a line through the origin
    w0, w1, _ = fit_idle_wake(lat, -0.3 + 0.5 * lat)
    assert w0 == 0.0 and w1 == pytest.approx(float(np.dot(lat, -0.3 + 0.5 * lat) / np.dot(lat, lat)))


def test_a_weighted_wake_up_fit_follows_the_variants_measured_best():
    """Two well-measured short variants on the line 1.5 + 0 x service, one long variant measured far off it: with
    weights 1 / se^2 the line stays with the short ones; without, the long one drags it."""
    lat, excess = [0.5, 1.0, 7.0], [1.5, 1.5, 4.5]
    w0, w1, _ = fit_idle_wake(lat, excess, [1 / 0.05 ** 2, 1 / 0.05 ** 2, 1 / 5.0 ** 2])
    assert w0 == pytest.approx(1.5, abs=0.1) and 0.0 <= w1 <= 0.05
    u0, u1, _ = fit_idle_wake(lat, excess)
    assert u1 > 0.4
    assert fit_idle_wake(lat, excess, [1.0, 1.0, 1.0]) == pytest.approx((u0, u1, fit_idle_wake(lat, excess)[2]))
    for bad in ([1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, float("nan"), 1.0]):
        with pytest.raises(ValueError, match="weights"):
            fit_idle_wake(lat, excess, bad)


def test_a_wake_up_excess_is_the_full_cost_behind_the_share_its_sleep_gives():
    import math

    share = 1.0 - math.exp(-(1000.0 / 60 - 2.0) / 3.0)
    excess, se = wake_excess(2.0, [2.0 + 0.9 * share, 2.0 + 1.1 * share], 60, 3.0)
    assert excess == pytest.approx(1.0) and se == pytest.approx(0.1)
    assert wake_excess(9.0, [10.0, 11.0], 60, 3.0) is None  # 9 ms of 16.7: hardly a sleep
    assert wake_excess(2.0, [3.0], 60, 3.0) is None


def test_a_wake_up_line_outside_the_plausible_range_is_refused_and_said():
    world = {"a": 0.5, "b": 1.0, "c": 3.0}
    ok = fit_wake_line(world, {"a": 1.5, "b": 1.5, "c": 1.5}, {"a": 0.05, "b": 0.05, "c": 0.05})
    assert (ok["idle_wake_ms"], ok["idle_wake_per_ms"]) == (pytest.approx(1.5), 0.0) and "refused" not in ok
    steep = fit_wake_line(world, {"a": 1.0, "b": 4.0, "c": 16.0}, {"a": 0.05, "b": 0.05, "c": 0.05})
    assert steep["idle_wake_ms"] is None and steep["idle_wake_per_ms"] is None and steep["refused"][1] > 2.0
    assert fit_wake_line(world, {"a": 1.0}, {"a": 0.1}) == {"idle_wake_ms": None, "idle_wake_per_ms": None,
                                                           "rms_ms": None}


def test_variants_a_probe_did_not_time_take_the_speed_of_their_own_precision():
    """Timed variants keep their ratio; the others are interpolated in log latency among the timed variants of their
    precision (held at the ends), or among all timed variants where none of theirs was timed."""
    from types import SimpleNamespace as V

    variants = [V(id="a8", latency_ms=0.1, operators=("int8",)), V(id="b8", latency_ms=0.4, operators=("int8",)),
                V(id="c8", latency_ms=0.2, operators=("prune", "int8")), V(id="d8", latency_ms=1.0, operators=("int8",)),
                V(id="a32", latency_ms=1.0, operators=("fp32",)), V(id="b32", latency_ms=3.0, operators=("fp32",)),
                V(id="h16", latency_ms=2.0, operators=("fp16",))]
    catalog = V(variants=variants, ids=[v.id for v in variants])
    s = variant_speeds({"a8": 1.2, "b8": 1.6, "b32": 0.75, "gone": 9.0}, catalog)
    assert set(s) == set(catalog.ids) and (s["a8"], s["b8"], s["b32"]) == (1.2, 1.6, 0.75)
    assert s["c8"] == pytest.approx(1.4)  # halfway between 0.1 and 0.4 ms in log latency
    assert s["d8"] == pytest.approx(1.6) and s["a32"] == pytest.approx(0.75)  # held at the ends of their precision
    assert s["h16"] == pytest.approx(np.interp(np.log(2.0), np.log([0.1, 0.4, 3.0]), [1.2, 1.6, 0.75]))
    assert variant_speeds({}, catalog) == {} and variant_speeds({"a8": float("nan")}, catalog) == {}
    assert variant_speeds({"a8": 50.0, "b8": 1.6}, catalog)["a8"] == 1.6  # a timing no host runs at: left out


def test_each_measured_variants_wake_up_cost_is_a_factor_on_the_line_and_the_others_take_their_precisions():
    """wake_factors: a measured excess over the cost the fitted line gives the variant's service, only where the factor
    is known to a quarter of the line (its standard error); variant_wake_scales spreads them over the catalog by
    precision as variant_speeds does, leaving out a factor beyond WAKE_SCALE_RANGE."""
    from types import SimpleNamespace as V

    line = {"idle_wake_ms": 0.4, "idle_wake_per_ms": 0.5}
    world = {"a8": 0.2, "b8": 0.8, "b32": 3.0, "noisy": 1.0}
    excess = {"a8": 0.75, "b8": 0.4, "b32": 1.9, "noisy": 2.0}
    se = {"a8": 0.02, "b8": 0.02, "b32": 0.05, "noisy": 0.5}
    f = wake_factors(line, world, excess, se)
    assert set(f) == {"a8", "b8", "b32"}  # noisy: 0.5 / 0.9 of the line, too unsure to stand for the variant
    assert f["a8"] == pytest.approx(0.75 / 0.5) and f["b8"] == pytest.approx(0.5) and f["b32"] == pytest.approx(1.0)
    assert wake_factors({"idle_wake_ms": None, "idle_wake_per_ms": None}, world, excess, se) == {}
    variants = [V(id="a8", latency_ms=0.1, operators=("int8",)), V(id="b8", latency_ms=0.4, operators=("int8",)),
                V(id="c8", latency_ms=0.2, operators=("int8",)), V(id="b32", latency_ms=3.0, operators=("fp32",)),
                V(id="a32", latency_ms=1.0, operators=("fp32",))]
    catalog = V(variants=variants, ids=[v.id for v in variants])
    s = variant_wake_scales(f, catalog)
    assert (s["a8"], s["b8"], s["b32"], s["a32"]) == (pytest.approx(1.5), pytest.approx(0.5), 1.0, 1.0)
    assert s["c8"] == pytest.approx(1.0)  # halfway between a8 and b8 in log latency
    assert variant_wake_scales({"a8": 50.0, "b8": 0.5}, catalog)["a8"] == 0.5  # beyond the range: a timing gone wrong
    assert variant_wake_scales({}, catalog) == {}
    # the cost the world gives each variant that sleeps: the line's, times its own factor where it has one
    plain = line_cost(0.4, 0.5, world, 60.0, 3.0)
    own = line_cost(0.4, 0.5, world, 60.0, 3.0, {"a8": 1.5})
    assert own["a8"] == pytest.approx(1.5 * plain["a8"]) and own["b8"] == plain["b8"]


def test_the_wake_up_costs_spread_is_what_the_responses_spread_beyond_the_service():
    """Responses = a service with its own jitter + a gamma wake-up cost of known mean and spread: wake_spread finds
    the cost's standard deviation, fit_wake_cv its ratio to the cost the model gives (through the origin, pooled
    over variants), 0 for a fixed cost; an implausible ratio is refused and kept."""
    rng = np.random.default_rng(0)
    cost = {"a": 0.5, "b": 1.0, "c": 2.0}
    spread = {}
    for v, c in cost.items():
        svc = 1.0 + rng.normal(0.0, 0.05, 20000)
        shape = 1.0 / 0.3 ** 2  # a gamma of cv 0.3
        resp = 1.0 + rng.normal(0.0, 0.05, 20000) + rng.gamma(shape, c / shape, 20000)
        spread[v] = wake_spread(resp, svc)
        assert spread[v] == pytest.approx(0.3 * c, rel=0.05)
    fit = fit_wake_cv(cost, spread)
    assert fit["wake_cv"] == pytest.approx(0.3, rel=0.05) and fit["rms_ms"] < 0.02
    assert fit_wake_cv(cost, {v: 0.0 for v in cost})["wake_cv"] == 0.0
    wide = fit_wake_cv(cost, {v: 5.0 * c for v, c in cost.items()})
    assert wide["wake_cv"] is None and wide["refused"] == pytest.approx(5.0)
    assert fit_wake_cv({"a": 0.0}, {"a": 0.1}) == {"wake_cv": None, "rms_ms": None}
    assert wake_spread([1.0], [1.0, 2.0]) is None
    # responses that spread less than the service (noise): no negative variance, a spread of 0
    assert wake_spread([2.0, 2.1, 2.0, 2.1], [1.0, 1.5, 1.0, 1.5]) == 0.0
    assert wake_spread([2.0, float("nan"), 2.2], [1.0, 1.1]) is None  # a broken sample is no spread, not 0
