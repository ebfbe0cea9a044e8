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

from adascale_rl.context.traces import trace_to_csv
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.evaluation import sim2real as s2r
from adascale_rl.evaluation.live import INTERVAL_COLUMNS
from adascale_rl.runtime.export import export_heuristic

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
