"""The sim-to-real report, checked on runs whose truth is known: "live" logs written by the simulator itself.

A run played in the simulator without latency noise and logged as ``adascale-rl run`` logs it must come back
from ``sim2real`` with the same return, the same metrics and a latency prediction error of zero: the report
lines the live periods up with the simulator's steps (period k's context, the mode, the initial variant)
exactly. The real model's runs are checked in tests/evaluation/test_live.py (bench --live writes the report).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml


from adascale_rl.context.traces import trace_to_csv
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.evaluation import sim2real as s2r
from adascale_rl.evaluation.live import INTERVAL_COLUMNS
from adascale_rl.runtime.export import export_heuristic
from _specs import copy_of_spec

QUIET = {"latency_sigma": 0.0, "spike_prob": 0.0}  # no latency noise: the model's expectation is the outcome


def _untuned(name, env, quick):
    return None, {}


def _fake_live_run(folder, selector, *, steps=40, start=0):
    """Play ``selector`` (an exported folder) in the simulator on Local-Digits' test split without noise and
    write the run as ``adascale-rl run`` writes a live one."""
    env = AdaScaleEnv("Local-Digits", split="test", max_episode_steps=steps, random_start_variant=False, **QUIET)
    policy = s2r.ExportedPolicy(selector, "greedy")
    obs, info = env.reset(seed=0, options={"trace": 0, "start": start})
    initial = info["variant"]
    policy.reset(env)
    rows, ctx = [], []
    for k, exo in enumerate(env.episode.exo):
        obs, r, _, _, info = env.step(policy.act(obs, info))
        served = int(round(exo.request_rate_hz * env.period_s * info["served_frac"]))
        row = {c: "" for c in INTERVAL_COLUMNS}
        row.update({"t_s": k, "segment": 0, "busy": 0, "memory_mb": 0, "request_rate_hz": exo.request_rate_hz,
                    "deadline_ms": exo.deadline_ms, "bg_cpu_util": exo.bg_cpu_util, "bg_runnable": exo.bg_runnable,
                    "mem_avail_mb": exo.mem_avail_mb, "freq_mhz": info["freq_mhz"], "variant": info["variant"],
                    "switched": int(info["switched"]), "served": served,
                    "on_time_frac": 1.0 - info["miss_rate"], "effective_accuracy": info["effective_accuracy"],
                    "latency_mean_ms": info["latency_ms"], "energy_j_estimate": info["energy_mj"] / 1e3,
                    "reward": r})
        rows.append(row)
        ctx.append(exo)
    folder.mkdir(parents=True)
    with open(folder / "intervals.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, INTERVAL_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    cols = ("t_s", "bg_cpu_util", "bg_runnable", "mem_avail_mb", "request_rate_hz", "deadline_ms")
    data = {"t_s": np.arange(len(ctx), dtype=float), **{c: np.array([getattr(e, c) for e in ctx]) for c in cols[1:]}}
    (folder / "context.csv").write_text(trace_to_csv(cols, data))
    (folder / "summary.json").write_text(json.dumps({
        "env": env.env_spec.id, "env_spec": str(env.env_spec.path), "policy": "greedy", "kind": "heuristic",
        "selector_folder": str(selector), "initial_variant": initial, "interrupted": False}))
    return rows


@pytest.fixture(scope="module")
def greedy(tmp_path_factory):
    return export_heuristic("greedy", "Local-Digits", tmp_path_factory.mktemp("sel") / "greedy", tune=_untuned)


def test_a_run_of_the_simulator_itself_comes_back_exactly(greedy, tmp_path):
    rows = _fake_live_run(tmp_path / "run", greedy)
    assert len({r["variant"] for r in rows}) >= 1
    out = s2r.sim2real(tmp_path / "run", seeds=2, progress=False, env_kwargs=QUIET)
    (row,) = out
    assert row["policy"] == "greedy" and row["kind"] == "heuristic" and row["runs"] == 1
    assert row["sim_return"] == pytest.approx(row["live_return"], rel=1e-9, abs=1e-9)
    assert row["return_gap_pct"] == pytest.approx(0.0, abs=1e-6)
    for k in ("miss_rate", "mean_latency_ms", "effective_accuracy", "switches"):
        assert row[f"sim_{k}"] == pytest.approx(row[f"live_{k}"], rel=1e-9, abs=1e-12), k
    assert row["latency_err_median_pct"] == pytest.approx(0.0, abs=1e-6)
    assert row["latency_err_p90_pct"] == pytest.approx(0.0, abs=1e-6)
    assert row["intervals"] == sum(1 for r in rows if r["served"])
    for name in ("sim2real.csv", "sim2real_runs.csv", "sim2real_intervals.csv", "sim2real.md"):
        assert (tmp_path / "run" / name).is_file(), name
    md = (tmp_path / "run" / "sim2real.md").read_text()
    assert "| greedy | heuristic | 1 |" in md and "estimate" in md


def test_the_latency_error_measures_a_known_slowdown(greedy, tmp_path):
    """Every logged latency 25 % above the model's: the error is -20 % in every period."""
    base = _fake_live_run(tmp_path / "base", greedy)
    lat = np.array([float(r["latency_mean_ms"]) for r in base])
    run = tmp_path / "slow"
    _fake_live_run(run, greedy)
    rows = list(csv.DictReader(open(run / "intervals.csv")))
    for r, latency in zip(rows, lat):
        r["latency_mean_ms"] = repr(1.25 * float(latency))
    with open(run / "intervals.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, INTERVAL_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (row,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET)
    assert row["latency_bias_median_pct"] == pytest.approx(-20.0, abs=1e-6)
    assert row["latency_err_median_pct"] == pytest.approx(20.0, abs=1e-6)


def test_runs_of_a_live_bench_are_grouped_by_controller_and_ranked(greedy, tmp_path):
    bench = tmp_path / "bench"
    for r in range(2):
        _fake_live_run(bench / "runs" / f"{r}-greedy", greedy, start=10 * r)
    # a run cut short by Ctrl-C is not in the bench's table, so not in the report either
    cut = bench / "runs" / "2-greedy"
    _fake_live_run(cut, greedy, steps=5)
    s = json.loads((cut / "summary.json").read_text())
    (cut / "summary.json").write_text(json.dumps({**s, "interrupted": True}))
    (row,) = s2r.sim2real(bench, seeds=1, progress=False, env_kwargs=QUIET)
    assert row["runs"] == 2 and row["live_rank"] == 1 and row["sim_rank"] == 1
    assert row["sim_return"] == pytest.approx(row["live_return"], rel=1e-9)
    runs = list(csv.DictReader(open(bench / "sim2real_runs.csv")))
    assert [r["run"] for r in runs] == ["0-greedy", "1-greedy"]


def test_folders_without_runs_and_mismatched_logs_are_one_line_errors(greedy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "sim2real", str(empty), "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "holds no live run" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (empty / "sim2real.csv").exists()
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=6)
    lines = (run / "context.csv").read_text().splitlines()
    (run / "context.csv").write_text("\n".join(lines[:-2]) + "\n")  # two periods fewer than intervals.csv
    with pytest.raises(s2r.Sim2RealError, match="context.csv has 4 periods, intervals.csv 6"):
        s2r.sim2real(run, seeds=1, progress=False)
    assert not (run / "sim2real.csv").exists()
    _fake_live_run(tmp_path / "bad", greedy, steps=6)
    text = (tmp_path / "bad" / "intervals.csv").read_text().splitlines()
    head = text[0].split(",")
    cells = text[3].split(",")
    cells[head.index("latency_mean_ms")] = "fast"
    (tmp_path / "bad" / "intervals.csv").write_text("\n".join([*text[:3], ",".join(cells), *text[4:]]) + "\n")
    with pytest.raises(s2r.Sim2RealError, match="bad: its logs cannot be read .*'fast'"):
        s2r.sim2real(tmp_path / "bad", seeds=1, progress=False)


def test_the_cli_writes_the_report_where_it_is_told(greedy, tmp_path):
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=8)
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "sim2real", str(run), "--seeds", "2", "--out",
                        str(tmp_path / "report"), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Sim-to-real" in r.stdout and (tmp_path / "report" / "sim2real.csv").is_file()
    rows = list(csv.DictReader(open(tmp_path / "report" / "sim2real.csv")))
    assert [x["policy"] for x in rows] == ["greedy"] and list(rows[0]) == list(s2r.COLUMNS)


def test_a_run_replayed_in_another_spec_of_its_environment_is_predicted_by_that_spec(greedy, tmp_path):
    """The run the shipped spec predicts exactly, replayed in a copy whose idle wake-up costs 1 ms more: every
    period is predicted slower (the wake-up cost applies at every rate here), and the report names the spec."""
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    slower = copy_of_spec(tmp_path / "now", idle_wake_ms=1.4044)
    (row,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, env=str(slower))
    assert row["latency_bias_median_pct"] > 5.0
    assert f"simulator: `{slower}`" in (run / "sim2real.md").read_text()
    (same,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET)
    assert same["latency_err_median_pct"] == pytest.approx(0.0, abs=1e-6)
    other = copy_of_spec(tmp_path / "other", stem="Other-Digits")
    with pytest.raises(s2r.Sim2RealError, match="is AdaScale/Other-Digits-v.*ran AdaScale/Local-Digits-v"):
        s2r.sim2real(run, seeds=1, progress=False, env=str(other))
    broken = copy_of_spec(tmp_path / "broken")
    (tmp_path / "broken" / "devices" / "local-x86.yaml").write_text("cores: {value: two}\n")
    with pytest.raises(s2r.Sim2RealError, match="--env .*broken/Local-Digits.yaml cannot be used: .*local-x86.yaml"):
        s2r.sim2real(run, seeds=1, progress=False, env=str(broken))


def test_a_heuristic_replayed_in_another_spec_keeps_what_its_folder_knows(greedy, tmp_path):
    """The world changes (the replay's preset), the controller does not: a heuristic plans with the device and
    catalog of its selector.json, as on the device."""
    slower = copy_of_spec(tmp_path / "now", idle_wake_ms=1.4044)
    env = AdaScaleEnv(str(slower), split="test")
    policy = s2r.ExportedPolicy(greedy, "greedy")
    view = policy._view(env)
    assert env.device.idle_wake_ms == pytest.approx(1.4044)
    assert view.device.idle_wake_ms == pytest.approx(AdaScaleEnv("Local-Digits", split="test").device.idle_wake_ms)
    assert view.catalog.ids == env.catalog.ids and view.encoder is env.encoder
    seen = []
    real = s2r.ExportedPolicy._view
    policy._view = lambda e: seen.append(e) or real(policy, e)
    policy.reset(env)  # and the heuristic is built on that view
    assert seen == [env]
    obs, info = env.reset(seed=0)
    assert 0 <= policy.act(obs, info) < env.action_space.n


def test_a_spec_whose_catalog_lists_the_variants_in_another_order_is_refused(greedy, tmp_path):
    """An action is a variant's index: a replay in a catalog of the same variants in another order would switch to
    the wrong ones."""
    import json as _json

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=6)
    spec = copy_of_spec(tmp_path / "now")
    doc = yaml.safe_load(open(spec))
    cat = _json.loads(open(doc["catalog"]).read())
    cat["variants"] = cat["variants"][::-1]
    (tmp_path / "now" / "local-x86.json").write_text(_json.dumps(cat))
    doc["catalog"] = str(tmp_path / "now" / "local-x86.json")
    spec.write_text(yaml.safe_dump(doc))
    with pytest.raises(s2r.Sim2RealError, match="other variants \\(or another order\\)"):
        s2r.sim2real(run, seeds=1, progress=False, env=str(spec))
    assert not (run / "sim2real.csv").exists()


def test_a_replay_on_a_slower_host_keeps_the_apps_model_of_the_run(greedy, tmp_path, monkeypatch):
    """Replayed in a spec of a host 1.5x slower than the catalog with a larger wake-up cost (what calibrate writes),
    the world serves slower -- every period predicted slower than the run, which the shipped model predicted
    exactly -- while the app in the replay observes its slow-down against the model its selector.json holds (the
    shipped preset), as the controller did on the device."""
    import adascale_rl.environment.env as env_module

    made = []

    class Recorded(env_module.AdaScaleEnv):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    monkeypatch.setattr(env_module, "AdaScaleEnv", Recorded)
    slower = copy_of_spec(tmp_path / "now", idle_wake_ms=1.4044, service_scale=1.5)
    (row,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, env=str(slower))
    (env,) = made
    shipped = AdaScaleEnv("Local-Digits", split="test").device
    assert (env.device.service_scale, env.device.idle_wake_ms) == (1.5, pytest.approx(1.4044))
    assert env.app_device.idle_wake_ms == shipped.idle_wake_ms
    assert env.app_physics.table.to_dict() == AdaScaleEnv("Local-Digits", split="test").physics.table.to_dict()
    assert row["latency_bias_median_pct"] > 40.0
    with pytest.raises(s2r.Sim2RealError, match="app_device is the controller's own"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs={"app_device": "local-x86"}, env=str(slower))


def test_a_run_is_replayed_at_the_host_speed_measured_before_it(greedy, tmp_path):
    """A run whose probe measured the host at 1.5x the catalog, replayed in the shipped spec: the world serves as
    the spec with service_scale 1.5 does (the same returns and predictions), and the report says where the speed
    came from; --host-speed spec ignores the probe; a run without one is replayed at the spec's speed."""
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    summary = json.loads((run / "summary.json").read_text())
    summary["host_speed"] = {"service_scale": 1.5, "median_ratio": 1.5}
    (run / "summary.json").write_text(json.dumps(summary))
    (own,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, out=tmp_path / "own")
    slower = copy_of_spec(tmp_path / "slower", service_scale=1.5)
    (spec,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, env=str(slower), host_speed="spec",
                           out=tmp_path / "spec")
    for k in ("sim_return", "sim_miss_rate", "sim_mean_latency_ms", "latency_err_median_pct",
              "latency_bias_median_pct"):
        assert own[k] == pytest.approx(spec[k], rel=1e-9, abs=1e-9), k
    assert own["latency_bias_median_pct"] > 40.0  # the live run was the shipped model's own: 1.5x predicted
    runs = list(csv.DictReader(open(tmp_path / "own" / "sim2real_runs.csv")))
    assert runs[0]["host_speed_from"] == "run" and float(runs[0]["world_service_scale"]) == pytest.approx(1.5)
    assert "at the speed measured right before each" in (tmp_path / "own" / "sim2real.md").read_text()
    # the same probe against a spec that is itself at 1.5x: the world stays at the measured 1.5x
    (again,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, env=str(slower), out=tmp_path / "again")
    assert again["sim_return"] == pytest.approx(own["sim_return"], rel=1e-9)
    (ignored,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, host_speed="spec", out=tmp_path / "s")
    assert ignored["latency_err_median_pct"] == pytest.approx(0.0, abs=1e-6)
    assert "at the spec's service_scale (1x)" in (tmp_path / "s" / "sim2real.md").read_text()
    with pytest.raises(s2r.Sim2RealError, match="host_speed"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs={**QUIET, "host_speed": [1, 2]})
    with pytest.raises(s2r.Sim2RealError, match="--host-speed must be one of run, run-line, run-median, spec"):
        s2r.sim2real(run, seeds=1, progress=False, host_speed="now")


def test_a_run_is_replayed_with_the_wake_up_cost_its_probe_measured(greedy, tmp_path):
    """A probe that measured the wake-up cost at the run's rate: the replay's world wakes as a spec with those
    constants does (the same returns and predictions), the app's model keeps its own, the report says so; a probe
    whose fit was implausible (None) leaves the spec's; --host-speed spec ignores it."""
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    summary = json.loads((run / "summary.json").read_text())
    wake = {"rate_hz": 60, "idle_wake_ms": 1.85, "idle_wake_per_ms": 0.02, "rms_ms": 0.4, "idle_sleep_ms": 5.0}
    summary["host_speed"] = {"service_scale": 1.5, "median_ratio": 1.5, "wake": wake}
    (run / "summary.json").write_text(json.dumps(summary))
    (own,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, out=tmp_path / "own")
    woken = copy_of_spec(tmp_path / "woken", service_scale=1.5, idle_wake_ms=1.85, idle_wake_per_ms=0.02,
                         idle_sleep_ms=5.0)
    (spec,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, env=str(woken), host_speed="spec",
                           out=tmp_path / "spec")
    for k in ("sim_return", "sim_mean_latency_ms", "latency_err_median_pct", "latency_bias_median_pct"):
        assert own[k] == pytest.approx(spec[k], rel=1e-9, abs=1e-9), k
    runs = list(csv.DictReader(open(tmp_path / "own" / "sim2real_runs.csv")))
    assert runs[0]["wake_from"] == "run" and float(runs[0]["world_idle_wake_ms"]) == pytest.approx(1.85)
    assert float(runs[0]["world_idle_sleep_ms"]) == 5.0  # the sleep curve the probe measured with
    assert "Wake-up cost: 1 run(s) at the cost the probe measured" in (tmp_path / "own" / "sim2real.md").read_text()
    # a longer wake-up than the shipped preset's: the live run (the shipped model's own) is predicted slower
    summary["host_speed"]["wake"] = None
    (run / "summary.json").write_text(json.dumps(summary))
    (speed_only,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, out=tmp_path / "speed")
    assert own["latency_bias_median_pct"] > speed_only["latency_bias_median_pct"]
    assert list(csv.DictReader(open(tmp_path / "speed" / "sim2real_runs.csv")))[0]["wake_from"] == "spec"
    summary["host_speed"]["wake"] = {**wake, "idle_wake_ms": None}
    (run / "summary.json").write_text(json.dumps(summary))
    (implausible,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, out=tmp_path / "none")
    assert implausible["sim_return"] == pytest.approx(speed_only["sim_return"], rel=1e-12)
    summary["host_speed"]["wake"] = wake
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(s2r.Sim2RealError, match="world_constants"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs={**QUIET, "world_constants": {"tick_ms": 2.0}})
    (ignored,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs={**QUIET, "world_constants": {"tick_ms": 4.0}},
                              host_speed="spec", out=tmp_path / "ignored")
    assert list(csv.DictReader(open(tmp_path / "ignored" / "sim2real_runs.csv")))[0]["wake_from"] == "world_constants"


def test_a_run_is_replayed_with_the_wake_up_spread_its_probe_measured(greedy, tmp_path):
    """A probe that measured how far the wake-up cost spreads (each variant's ``spread_ms``): the replay's world takes
    the ratio of that spread to the cost the refitted line gives (wake_cv), as a spec with that wake_cv does; the
    runs' table and the report say it; a probe without spreads leaves the spec's."""
    from adascale_rl.device.presets import load_device
    from adascale_rl.elastic.contention import sleep_share

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    ids = [v["id"] for v in json.loads((greedy / "selector.json").read_text())["variants"]][:2]
    cat = {v["id"]: v["latency_ms"] for v in json.loads((greedy / "selector.json").read_text())["variants"]}
    tau = load_device("local-x86").idle_sleep_ms
    world = {v: 1.5 * cat[v] for v in ids}
    w0, w1 = 1.0, 0.1
    excess = {v: w0 + w1 * world[v] for v in ids}
    summary = json.loads((run / "summary.json").read_text())
    summary["host_speed"] = {"service_scale": 1.5, "median_ratio": 1.5, "wake": {
        "rate_hz": 60, "idle_sleep_ms": tau, "excess_ms": excess, "excess_se_ms": {v: 0.05 for v in ids},
        "world_ms": world, "response_ms": {v: world[v] + excess[v] * sleep_share(world[v], 60, tau) for v in ids},
        "spread_ms": {v: 0.25 * excess[v] * sleep_share(world[v], 60, tau) for v in ids},
        "idle_wake_ms": w0, "idle_wake_per_ms": w1, "rms_ms": 0.0}}
    (run / "summary.json").write_text(json.dumps(summary))
    (own,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, host_speed="run-median",
                          out=tmp_path / "own")
    runs = list(csv.DictReader(open(tmp_path / "own" / "sim2real_runs.csv")))
    assert float(runs[0]["world_wake_cv"]) == pytest.approx(0.25, abs=1e-3) and runs[0]["wake_cv_from"] == "run"
    assert "its spread in 1, wake_cv 0.25-0.25 x its mean" in (tmp_path / "own" / "sim2real.md").read_text()
    spec = copy_of_spec(tmp_path / "spec", service_scale=1.5, idle_wake_ms=w0, idle_wake_per_ms=w1, idle_sleep_ms=tau,
                        wake_cv=0.25)
    (same,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, env=str(spec), host_speed="spec",
                           out=tmp_path / "spec-out")
    assert own["sim_return"] == pytest.approx(same["sim_return"], rel=1e-9)
    del summary["host_speed"]["wake"]["spread_ms"]
    (run / "summary.json").write_text(json.dumps(summary))
    s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, host_speed="run-median", out=tmp_path / "none")
    runs = list(csv.DictReader(open(tmp_path / "none" / "sim2real_runs.csv")))
    assert float(runs[0]["world_wake_cv"]) == pytest.approx(load_device("local-x86").wake_cv)
    assert runs[0]["wake_cv_from"] == "spec" and runs[0]["wake_from"] == "run"
    assert "its spread" not in (tmp_path / "none" / "sim2real.md").read_text()  # the spec's is not called measured


def test_a_run_is_replayed_with_its_probes_excesses_fitted_again(greedy, tmp_path):
    """A probe that recorded each variant's wake-up excess (and its standard error) is fitted again at replay: a line
    the probe refused (or recorded under another rule) gives way to the current fit of the same excesses."""
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    ids = [v["id"] for v in json.loads((greedy / "selector.json").read_text())["variants"]][:3]
    summary = json.loads((run / "summary.json").read_text())
    summary["host_speed"] = {"service_scale": 1.5, "median_ratio": 1.5, "wake": {
        "rate_hz": 60, "idle_sleep_ms": 3.762, "excess_ms": {v: 1.3 for v in ids},
        "excess_se_ms": {v: 0.05 for v in ids}, "idle_wake_ms": None, "idle_wake_per_ms": None, "rms_ms": None,
        "refused": [9.9, 9.9]}}
    (run / "summary.json").write_text(json.dumps(summary))
    (row,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "out")
    runs = list(csv.DictReader(open(tmp_path / "out" / "sim2real_runs.csv")))
    assert runs[0]["wake_from"] == "run"
    assert (float(runs[0]["world_idle_wake_ms"]), float(runs[0]["world_idle_wake_per_ms"])) == (
        pytest.approx(1.3), pytest.approx(0.0, abs=1e-9))
    summary["host_speed"]["wake"]["excess_ms"] = {ids[0]: 1.3}  # one variant: no line, so the spec's
    (run / "summary.json").write_text(json.dumps(summary))
    s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "one")
    assert list(csv.DictReader(open(tmp_path / "one" / "sim2real_runs.csv")))[0]["wake_from"] == "spec"


def test_the_noise_columns_come_from_the_requests_and_the_paired_runs(greedy, tmp_path):
    """Four requests per period at the period's mean latency -/+ 10 %: each period's mean has a standard error of
    0.1 x mean / sqrt(3), so an exact model's median error from sampling alone is 0.674 x that."""
    bench = tmp_path / "bench"
    for r in range(2):
        rows = _fake_live_run(bench / "runs" / f"{r}-greedy", greedy, steps=12, start=10 * r)
        arrival, start, end, dropped = [], [], [], []
        for row in rows:
            if not int(row["served"]):
                continue
            m = float(row["latency_mean_ms"]) / 1000.0
            for j, f in enumerate((0.9, 0.9, 1.1, 1.1)):
                a = float(row["t_s"]) + 0.1 * (j + 1)
                arrival.append(a), start.append(a), end.append(a + f * m), dropped.append(False)
        arrival.append(1.0), start.append(np.nan), end.append(np.nan), dropped.append(True)  # a stale request
        n = len(arrival)
        np.savez_compressed(bench / "runs" / f"{r}-greedy" / "requests.npz", arrival_s=np.array(arrival),
                            start_s=np.array(start), end_s=np.array(end), variant=np.zeros(n, dtype=int),
                            input=np.zeros(n, dtype=int), label=np.zeros(n, dtype=int),
                            answer=np.zeros(n, dtype=int), dropped=np.array(dropped))
    (row,) = s2r.sim2real(bench, seeds=1, progress=False, env_kwargs=QUIET)
    assert row["latency_noise_median_pct"] == pytest.approx(100 * s2r.HALF_NORMAL_MEDIAN * 0.1 / np.sqrt(3),
                                                            rel=1e-6)
    assert row["return_gap_ci95_pct"] == pytest.approx(0.0, abs=1e-6)  # the simulator's own runs: no gap at all
    periods = list(csv.DictReader(open(bench / "sim2real_intervals.csv")))
    assert all(float(p["measured_latency_se_ms"]) > 0 for p in periods if int(p["served"]))
    md = (bench / "sim2real.md").read_text()
    assert "## What of the gap is noise" in md and "| greedy | 2 | 0.0 % ± 0.0 % |" in md
    # a run without requests.npz has no sampling column, and says n/a rather than 0
    (bench / "runs" / "0-greedy" / "requests.npz").unlink()
    (bench / "runs" / "1-greedy" / "requests.npz").unlink()
    (row,) = s2r.sim2real(bench, seeds=1, progress=False, env_kwargs=QUIET)
    assert np.isnan(row["latency_noise_median_pct"])


def test_the_hindsight_floor_predicts_each_period_from_the_others_of_its_segment_and_variant():
    def p(seg, variant, ms):
        return {"segment": seg, "variant": variant, "measured_latency_ms": ms, "served": 10}

    err = s2r.hindsight_errors([p(0, "a", 10.0), p(0, "a", 20.0), p(1, "a", 5.0), p(0, "b", 7.0), p(0, "b", 7.0)])
    assert err[0] == pytest.approx(100.0) and err[1] == pytest.approx(-50.0)
    assert np.isnan(err[2])  # alone in its group: no other period to predict it from
    assert err[3] == pytest.approx(0.0) and err[4] == pytest.approx(0.0)


def test_each_variant_is_replayed_at_the_speed_its_probe_measured(greedy, tmp_path):
    """A probe that timed variants at different ratios: the replay's world serves each at its own (the others
    interpolated, ``variant_speeds``), as an environment given those speeds does; ``run-median`` serves every
    variant at the probe's median, as before per-variant speeds."""
    from adascale_rl.elastic.contention import variant_speeds
    from adascale_rl.runtime.folder import catalog_of

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    doc = json.loads((greedy / "selector.json").read_text())
    ids = [v["id"] for v in doc["variants"]]
    ratios = {ids[0]: 0.8, ids[len(ids) // 2]: 1.9, ids[-1]: 1.4}
    summary = json.loads((run / "summary.json").read_text())
    summary["host_speed"] = {"service_scale": 1.4, "median_ratio": 1.4, "ratios": ratios}
    (run / "summary.json").write_text(json.dumps(summary))
    (own,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, out=tmp_path / "own")
    speeds = variant_speeds(ratios, catalog_of(doc))
    (given,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs={**QUIET, "variant_service_scale": speeds},
                            host_speed="spec", out=tmp_path / "given")
    for k in ("sim_return", "sim_mean_latency_ms", "latency_err_median_pct", "latency_bias_median_pct"):
        assert own[k] == pytest.approx(given[k], rel=1e-9, abs=1e-9), k
    (median,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, host_speed="run-median",
                             out=tmp_path / "median")
    slower = copy_of_spec(tmp_path / "slower", service_scale=1.4)
    (spec,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, env=str(slower), host_speed="spec",
                           out=tmp_path / "spec")
    assert median["sim_return"] == pytest.approx(spec["sim_return"], rel=1e-9)
    assert own["latency_err_median_pct"] != pytest.approx(median["latency_err_median_pct"], abs=1e-3)
    runs = list(csv.DictReader(open(tmp_path / "own" / "sim2real_runs.csv")))
    assert runs[0]["host_speed_from"] == "run"
    assert float(runs[0]["world_service_scale"]) == pytest.approx(float(np.median(list(speeds.values()))))
    assert "each variant at its own ratio in 1" in (tmp_path / "own" / "sim2real.md").read_text()
    assert list(csv.DictReader(open(tmp_path / "median" / "sim2real_runs.csv")))[0]["host_speed_from"] == "run-median"
    with pytest.raises(s2r.Sim2RealError, match="variant_service_scale"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs={**QUIET, "variant_service_scale": speeds})


def test_a_probe_of_uneven_speeds_is_refitted_to_the_line_it_measured(greedy, tmp_path):
    """Three variants at 1.6, 1.0 and 0.7x their catalog latency, each answering at 60 Hz 1.3 ms (the full wake-up
    cost) after its own back-to-back service: replayed with each at its own speed the refit is the recorded line
    (1.3 ms + 0 x service); against the median's service (run-median) the same responses give another line."""
    import math as m

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    doc = json.loads((greedy / "selector.json").read_text())
    cat = {v["id"]: v["latency_ms"] for v in doc["variants"][:3]}
    ratios = dict(zip(cat, (1.6, 1.0, 0.7)))
    tau = 3.762

    def share(w):
        return 1.0 - m.exp(-(1000.0 / 60 - w) / tau)

    world = {v: ratios[v] * cat[v] for v in cat}
    summary = json.loads((run / "summary.json").read_text())
    summary["host_speed"] = {"service_scale": 1.0, "median_ratio": 1.0, "ratios": ratios, "wake": {
        "rate_hz": 60, "idle_sleep_ms": tau, "excess_ms": {v: 1.3 for v in cat}, "excess_se_ms": {v: 0.05 for v in cat},
        "response_ms": {v: world[v] + 1.3 * share(world[v]) for v in cat}, "world_ms": world,
        "idle_wake_ms": 1.3, "idle_wake_per_ms": 0.0, "rms_ms": 0.0}}
    (run / "summary.json").write_text(json.dumps(summary))
    for how in ("run", "run-median"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, host_speed=how, out=tmp_path / how)
    own = list(csv.DictReader(open(tmp_path / "run" / "sim2real_runs.csv")))[0]
    assert own["wake_from"] == "run"
    assert (float(own["world_idle_wake_ms"]), float(own["world_idle_wake_per_ms"])) == (
        pytest.approx(1.3, abs=1e-3), pytest.approx(0.0, abs=1e-3))
    median = list(csv.DictReader(open(tmp_path / "run-median" / "sim2real_runs.csv")))[0]
    assert (abs(float(median["world_idle_wake_ms"]) - 1.3) > 0.05 or float(median["world_idle_wake_per_ms"]) > 0.05)


def test_each_variant_is_replayed_with_the_wake_up_cost_its_probe_measured(greedy, tmp_path):
    """A probe whose variants ran at their own speeds and woke up off one line (each measured to within a quarter of
    it), the one furthest above it spreading by 0.3 x the cost it really had: the replay's world (``run``) gives each variant its own cost
    over the refitted line (the others interpolated in their precision, ``variant_wake_scales``) and fits the
    spread against those costs, as an environment given those speeds, factors, line and spread does; ``run-line``
    keeps every variant on the line (the replay before per-variant wake-up costs) and fits the spread against it;
    the runs' table and the report say which, and also what the world was given through env arguments."""
    from adascale_rl.elastic.contention import (fit_wake_line, line_cost, sleep_share, variant_speeds,
                                                variant_wake_scales, wake_factors)
    from adascale_rl.runtime.folder import catalog_of

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=12)
    doc = json.loads((greedy / "selector.json").read_text())
    catalog = catalog_of(doc)
    played = {r["variant"] for r in csv.DictReader(open(run / "intervals.csv"))}
    cat = {v["id"]: v["latency_ms"] for v in doc["variants"]}
    ids = sorted(cat, key=cat.get)
    probed = [ids[0], ids[len(ids) // 2], ids[-1]] + sorted(played - {ids[0], ids[len(ids) // 2], ids[-1]})[:1]
    ratios = {v: r for v, r in zip(probed, (1.0, 1.3, 0.9, 1.1))}
    speeds = variant_speeds(ratios, catalog)
    tau = 3.762
    world = {v: speeds[v] * cat[v] for v in probed}
    excess = {v: e for v, e in zip(probed, (0.5, 2.0, 0.5, 2.6))}  # no line through them: each off it
    se = {v: 0.02 for v in probed}
    fit = fit_wake_line(world, excess, se)
    scales = variant_wake_scales(wake_factors(fit, world, excess, se), catalog)
    assert min(scales.values()) < 0.9 and max(scales.values()) > 1.1
    own_cost = line_cost(fit["idle_wake_ms"], fit["idle_wake_per_ms"], world, 60, tau)
    dear = max(probed, key=scales.get)  # the spread measured on the variant furthest above the line
    summary = json.loads((run / "summary.json").read_text())
    summary["host_speed"] = {"service_scale": 1.0, "median_ratio": 1.0, "ratios": ratios, "wake": {
        "rate_hz": 60, "idle_sleep_ms": tau, "excess_ms": excess, "excess_se_ms": se, "world_ms": world,
        "response_ms": {v: world[v] + excess[v] * sleep_share(world[v], 60, tau) for v in probed},
        "spread_ms": {dear: 0.3 * scales[dear] * own_cost[dear]},
        "idle_wake_ms": 1.0, "idle_wake_per_ms": 0.1, "rms_ms": 0.5}}
    (run / "summary.json").write_text(json.dumps(summary))
    (own,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, out=tmp_path / "own")
    (line_only,) = s2r.sim2real(run, seeds=2, progress=False, env_kwargs=QUIET, host_speed="run-line",
                                out=tmp_path / "line")
    runs = list(csv.DictReader(open(tmp_path / "own" / "sim2real_runs.csv")))[0]
    line_row = list(csv.DictReader(open(tmp_path / "line" / "sim2real_runs.csv")))[0]
    assert float(runs["world_wake_cv"]) == pytest.approx(0.3, abs=1e-3)  # against each variant's own cost
    assert float(line_row["world_wake_cv"]) == pytest.approx(0.3 * scales[dear], abs=1e-3)  # against the line's
    constants = {"idle_wake_ms": fit["idle_wake_ms"], "idle_wake_per_ms": fit["idle_wake_per_ms"],
                 "idle_sleep_ms": tau}
    (given,) = s2r.sim2real(run, seeds=2, progress=False, host_speed="spec", out=tmp_path / "given", env_kwargs={
        **QUIET, "world_constants": {**constants, "wake_cv": float(runs["world_wake_cv"])},
        "variant_service_scale": speeds, "variant_wake_scale": scales})
    (given_line,) = s2r.sim2real(run, seeds=2, progress=False, host_speed="spec", out=tmp_path / "given-line",
                                 env_kwargs={**QUIET, "variant_service_scale": speeds, "world_constants": {
                                     **constants, "wake_cv": float(line_row["world_wake_cv"])}})
    for k in ("sim_return", "sim_mean_latency_ms", "latency_err_median_pct", "latency_bias_median_pct"):
        assert own[k] == pytest.approx(given[k], rel=1e-6, abs=1e-9), k
        assert line_only[k] == pytest.approx(given_line[k], rel=1e-6, abs=1e-9), k
    assert own["latency_err_median_pct"] != pytest.approx(line_only["latency_err_median_pct"], abs=1e-3)
    n = len(probed)
    assert int(runs["wake_scales_measured"]) == n and runs["host_speed_from"] == "run"
    assert float(runs["world_wake_scale_min"]) == pytest.approx(min(scales.values()), rel=1e-6)
    assert float(runs["world_wake_scale_max"]) == pytest.approx(max(scales.values()), rel=1e-6)
    report = (tmp_path / "own" / "sim2real.md").read_text()
    assert f"each variant's cost over that line as the probe measured it in 1 ({n}-{n} variants measured" in report
    assert "each variant at its own ratio in 1" in report
    assert int(line_row["wake_scales_measured"]) == 0 and line_row["host_speed_from"] == "run-line"
    assert float(line_row["world_wake_scale_min"]) == float(line_row["world_wake_scale_max"]) == 1.0
    line_report = (tmp_path / "line" / "sim2real.md").read_text()
    assert "over that line" not in line_report and "each variant at its own ratio in 1" in line_report
    given_row = list(csv.DictReader(open(tmp_path / "given" / "sim2real_runs.csv")))[0]  # what the world was given
    assert int(given_row["wake_scales_measured"]) == 0
    assert float(given_row["world_wake_scale_max"]) == pytest.approx(max(scales.values()), rel=1e-6)
    with pytest.raises(s2r.Sim2RealError, match="variant_wake_scale"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs={**QUIET, "variant_wake_scale": scales})


def test_a_corrupt_requests_file_leaves_the_sampling_column_empty(greedy, tmp_path):
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=6)
    (run / "requests.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    (row,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET)
    assert np.isnan(row["latency_noise_median_pct"]) and row["runs"] == 1


def test_a_run_whose_spec_file_is_gone_is_replayed_by_its_environment_id(greedy, tmp_path):
    """summary.json names the spec file it ran by absolute path; a run copied elsewhere (or whose checkout moved)
    is replayed in the registered spec of the same id, with the same result."""
    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=8)
    (here,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "here")
    summary = json.loads((run / "summary.json").read_text())
    summary["env_spec"] = str(tmp_path / "moved-away" / "Local-Digits.yaml")
    (run / "summary.json").write_text(json.dumps(summary))
    (moved,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "moved")
    assert moved["sim_return"] == pytest.approx(here["sim_return"], rel=1e-12)


def test_a_run_of_an_earlier_version_is_replayed_in_the_current_dynamics_and_says_so(greedy, tmp_path):
    """A live run is a measurement: after the dynamics change (a new ``-vN``), the runs logged before are replayed
    in the current version of their environment (also when the file they ran is gone), and the report says which
    version they ran; another environment's exported controller is still refused."""
    from adascale_rl.environment.spec import VERSION

    run = tmp_path / "run"
    _fake_live_run(run, greedy, steps=8)
    (now,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "now")
    assert "Versions:" not in (tmp_path / "now" / "sim2real.md").read_text()
    old_id = f"AdaScale/Local-Digits-v{VERSION - 1}"
    summary = json.loads((run / "summary.json").read_text())
    summary.update(env=old_id, env_spec=str(tmp_path / "moved-away" / "Local-Digits.yaml"))
    (run / "summary.json").write_text(json.dumps(summary))
    selector = tmp_path / "old-selector"
    selector.mkdir()
    for f in greedy.iterdir():
        (selector / f.name).write_bytes(f.read_bytes())
    doc = json.loads((selector / "selector.json").read_text())
    doc["env"]["id"] = old_id
    (selector / "selector.json").write_text(json.dumps(doc))
    summary["selector_folder"] = str(selector)
    (run / "summary.json").write_text(json.dumps(summary))
    (then,) = s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "then")
    assert then["sim_return"] == pytest.approx(now["sim_return"], rel=1e-12)
    md = (tmp_path / "then" / "sim2real.md").read_text()
    assert f"ran `{old_id}`, replayed in `AdaScale/Local-Digits-v{VERSION}`" in md
    runs = list(csv.DictReader(open(tmp_path / "then" / "sim2real_runs.csv")))
    assert runs[0]["ran_env"] == old_id and runs[0]["replayed_env"] == f"AdaScale/Local-Digits-v{VERSION}"
    doc["env"]["id"] = f"AdaScale/Rpi4-Vision-v{VERSION - 1}"
    (selector / "selector.json").write_text(json.dumps(doc))
    with pytest.raises(s2r.Sim2RealError, match="was exported for AdaScale/Rpi4-Vision"):
        s2r.sim2real(run, seeds=1, progress=False, env_kwargs=QUIET, out=tmp_path / "other")
