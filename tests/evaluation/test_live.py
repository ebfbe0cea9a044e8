"""`adascale-rl run`: the real elastic model of a quick profile served on this machine under a controller, with
load schedules whose children never outlive the run, and logs that stay readable when it is stopped."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import yaml

from _procs import interrupt_when
from adascale_rl.context.traces import validate_path
from adascale_rl.elastic.calibrate import pick_variants
from adascale_rl.evaluation.live import INTERVAL_COLUMNS, WAKE_CALLS

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _env(profiled) -> dict:
    return {**os.environ, "ADASCALE_RL_CACHE": str(profiled.cache)}


def _run(profiled, *args, cwd):
    spec = profiled.out / "MyHost-Digits.yaml"
    return subprocess.run([sys.executable, "-m", "adascale_rl.cli", "run", "--env", str(spec), "--no-progress",
                           *args], cwd=cwd, capture_output=True, text=True, env=_env(profiled), timeout=300)


def check_answers_are_the_models(profiled, req, served, monkeypatch):
    import torch

    from adascale_rl.device.catalog import load_catalog
    from adascale_rl.elastic.variants import catalog_data, variant_files

    monkeypatch.setenv("ADASCALE_RL_CACHE", str(profiled.cache))
    catalog = load_catalog(next((profiled.out / "catalogs").glob("*.json")))
    files, data = variant_files(catalog), catalog_data(catalog)
    names = [str(v) for v in req["variants"]]
    idx = np.flatnonzero(served)[:40]
    with torch.inference_mode():
        for j in idx:
            model = torch.jit.load(str(files[names[req["variant"][j]]])).eval()
            x = data.x_test[req["input"][j]:req["input"][j] + 1]
            assert int(model(x).argmax()) == req["answer"][j]
            assert int(data.y_test[req["input"][j]]) == req["label"][j]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_serves_the_profiled_model_and_logs_every_period(profiled, tmp_path, monkeypatch):
    out = tmp_path / "live"
    r = _run(profiled, "--controller", "greedy", "--quick", "--duration", "3", "--rate", "40", "--deadline", "50",
             "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ran 3 periods" in r.stdout and "(heuristic)" in r.stdout and "energy" in r.stdout
    rows = _rows(out / "intervals.csv")
    assert len(rows) == 3 and list(rows[0]) == list(INTERVAL_COLUMNS)
    ids = {v["id"] for v in json.loads((out / "selector" / "selector.json").read_text())["variants"]}
    for row in rows:
        assert row["variant"] in ids and row["selector_status"] == "ok"
        assert int(row["requests"]) == int(row["served"]) + int(row["dropped"]) and int(row["requests"]) >= 30
        assert 0 <= int(row["correct"]) <= int(row["served"]) and 0 <= int(row["on_time"]) <= int(row["served"])
        assert float(row["request_rate_hz"]) == 40 and float(row["deadline_ms"]) == 50
        assert 0.0 <= float(row["bg_cpu_util"]) <= 1.0 and float(row["mem_avail_mb"]) > 0
    req = np.load(out / "requests.npz")
    served = ~req["dropped"]
    assert len(req["arrival_s"]) == sum(int(r["requests"]) for r in rows)
    assert np.all(req["end_s"][served] >= req["start_s"][served])
    assert np.all(req["start_s"][served] >= req["arrival_s"][served] - 1e-9)
    # the answers are the variant's own on the labelled test input (the quick profile's model is barely trained,
    # so its accuracy says nothing; its answers do)
    check_answers_are_the_models(profiled, req, served, monkeypatch)
    correct = req["answer"][served] == req["label"][served]
    assert int(sum(int(r["correct"]) for r in rows)) == int(correct.sum())
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] is False and s["periods"] == 3 and s["kind"] == "heuristic"
    assert s["load_shortfalls"] == []  # no load schedule: nothing that could fall short
    assert s["requests"] == len(req["arrival_s"]) and "ESTIMATE" in s["energy_note"]
    assert abs(s["return"] - sum(float(r["reward"]) for r in rows)) < 1e-3
    assert "valid trace, 3 rows at 1 s" in validate_path(out / "context.csv")  # a trace the simulator replays
    # the host's speed, measured before the run: back-to-back service of every variant of the catalog
    h = s["host_speed"]
    assert set(h["ratios"]) == ids and min(h["calls"].values()) >= 3
    assert h["median_ratio"] == pytest.approx(float(np.median(list(h["ratios"].values()))), abs=1e-3)
    assert h["service_scale"] is None or 0.05 <= h["service_scale"] <= 20
    assert "host speed before the run" in r.stdout
    # then the wake-up cost at the run's rate: requests one every 25 ms, the thread asleep in between
    w = h["wake"]  # the quick profile's variants take well under half of the 25 ms between requests: all measured
    lat = {v["id"]: v["latency_ms"]
           for v in json.loads(next((profiled.out / "catalogs").glob("*.json")).read_text())["variants"]}
    spread = set(pick_variants(lat, min(6, len(ids))))
    assert w["rate_hz"] == 40 and w["calls"] == WAKE_CALLS
    assert set(w["excess_ms"]) == spread | {s["initial_variant"]}  # the run's starting variant among them
    assert set(w["excess_se_ms"]) == set(w["excess_ms"]) and w["idle_sleep_ms"] > 0
    for v in w["excess_ms"]:
        assert 0 < w["service_ms"][v] < 12.5 and w["response_ms"][v] - w["service_ms"][v] < 25.0
        assert w["excess_se_ms"][v] >= 0
    # how far the wake-up cost spreads, each variant's against its back-to-back times
    assert set(w["spread_ms"]) == set(w["excess_ms"]) and all(x >= 0 for x in w["spread_ms"].values())
    if w["idle_wake_ms"] is not None:
        assert 0 <= w["idle_wake_ms"] <= 5 and 0 <= w["idle_wake_per_ms"] <= 2 and w["rms_ms"] >= 0
        assert "wake-up cost at 40 Hz" in r.stdout
        assert "wake_cv" in w and (w["wake_cv"] is None or 0 <= w["wake_cv"] <= 3)


def test_the_probe_measures_the_wake_up_cost_of_the_variant_a_run_starts_on(profiled, monkeypatch):
    """``host_speed(also=...)``: the variants named (a run's starting variant) are served at the rate too, beside the
    ones spread over the latency range, so the replay has their own wake-up cost; an unknown id is ignored."""
    from adascale_rl.evaluation.live import LiveSetup

    monkeypatch.setenv("ADASCALE_RL_CACHE", str(profiled.cache))
    setup = LiveSetup(str(profiled.out / "MyHost-Digits.yaml"))
    lat = {v.id: v.latency_ms for v in setup.catalog.variants}
    ends = set(pick_variants(lat, 2))
    middle = next(v for v in sorted(lat, key=lat.get) if v not in ends)
    w = setup.host_speed(0.2, variants=2, rate_hz=40, also=[middle, "no-such-variant"])["wake"]
    assert set(w["response_ms"]) == ends | {middle}
    assert set(setup.host_speed(0.2, variants=2, rate_hz=40)["wake"]["response_ms"]) == ends


def test_sigterm_stops_the_run_its_load_children_and_leaves_readable_logs(profiled, tmp_path):
    sched = tmp_path / "two-steps.yaml"
    sched.write_text(yaml.safe_dump({"name": "two-steps", "description": "test", "segments": [
        {"duration_s": 2, "busy": 1, "request_rate_hz": 30, "deadline_ms": 40},
        {"duration_s": 60, "busy": 2, "memory_mb": 64}]}))
    out = tmp_path / "live"
    spec = profiled.out / "MyHost-Digits.yaml"
    p = subprocess.Popen([sys.executable, "-m", "adascale_rl.cli", "run", "--env", str(spec), "--no-progress",
                          "--controller", "static-largest", "--load", str(sched), "--out", str(out)],
                         cwd=tmp_path, env=_env(profiled), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()

    def three_periods_logged() -> bool:  # and every child the run started so far noted
        try:
            children.update(c.pid for c in psutil.Process(p.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return False
        return (out / "intervals.csv").exists() and len(_rows(out / "intervals.csv")) >= 3

    err = interrupt_when(p, three_periods_logged, signal.SIGTERM)
    assert len(children) >= 3  # 2 busy processes and the memory hog of the second segment
    assert p.returncode == 130, err[-2000:]
    time.sleep(0.5)
    alive = [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    rows = _rows(out / "intervals.csv")
    assert len(rows) >= 3 and {r["busy"] for r in rows[:2]} == {"1"}
    assert float(rows[0]["request_rate_hz"]) == 30 and float(rows[0]["deadline_ms"]) == 40
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] is True and s["load"] == "two-steps" and s["periods"] == len(rows)
    assert len(np.load(out / "requests.npz")["arrival_s"]) == sum(int(r["requests"]) for r in rows)


@pytest.mark.parametrize("args, words", [
    (("--controller", "nosuch"), "--controller 'nosuch' is not an exported folder"),
    (("--controller", "planr"), "--controller 'planr' (did you mean 'planner'?) is not an exported folder"),
    (("--duration", "-1"), "--duration must be a positive number"),
    (("--threads", "0"), "--threads must be at least 1"),
    (("--host-probe", "-1"), "--host-probe must be a number of seconds"),
])
def test_bad_arguments_are_one_line_errors_before_any_work(profiled, tmp_path, args, words):
    out = tmp_path / "live"
    r = _run(profiled, *args, "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (out / "intervals.csv").exists()


def test_bench_live_runs_every_controller_in_interleaved_rounds(profiled, tmp_path):
    sched = tmp_path / "short.yaml"
    sched.write_text(yaml.safe_dump({"name": "short", "description": "test", "segments": [
        {"duration_s": 1, "request_rate_hz": 40, "deadline_ms": 50},
        {"duration_s": 1, "busy": 1, "request_rate_hz": 40, "deadline_ms": 50}]}))
    out = tmp_path / "lb"
    spec = profiled.out / "MyHost-Digits.yaml"
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "bench", "--live", "--env", str(spec), "--quick",
                        "--rounds", "2", "--policies", "static-largest,greedy", "--load", str(sched), "--out", str(out),
                        "--no-progress"], cwd=tmp_path, capture_output=True, text=True, env=_env(profiled), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _rows(out / "results.csv")
    results = {row["policy"]: row for row in rows}
    assert {row["policy"] for row in rows} == {"static-largest", "greedy"}
    assert {row["kind"] for row in rows} == {"heuristic"} and {row["episodes"] for row in rows} == {"2"}
    assert all(row["ci95_return"] not in ("", "nan") for row in rows)  # two rounds: a CI
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["0-greedy", "0-static-largest", "1-greedy", "1-static-largest"]
    for name in runs:
        s = json.loads((out / "runs" / name / "summary.json").read_text())
        assert s["load"] == "short" and s["periods"] == 2 and not s["interrupted"]
        assert s["host_speed"]["seconds"] > 0 and s["host_speed"]["ratios"]  # probed before each run
    md = (out / "results.md").read_text()
    assert "ESTIMATE" in md and "2 interleaved rounds" in md and (out / "returns.png").exists()
    assert (out / "timeline.png").stat().st_size > 10_000  # load, variant and latency against the deadline
    # the sim-to-real report of the same runs: each replayed in the simulator with the same controller
    s2r = {row["policy"]: row for row in _rows(out / "sim2real.csv")}
    assert set(s2r) == {"static-largest", "greedy"} and {row["runs"] for row in s2r.values()} == {"2"}
    for row in s2r.values():
        assert float(row["live_return"]) == pytest.approx(float(results[row["policy"]]["mean_return"]), rel=1e-5, abs=1e-5)
        assert row["sim_return"] not in ("", "nan") and int(row["intervals"]) > 0
        assert float(row["latency_err_median_pct"]) >= 0.0
    assert sorted(int(row["live_rank"]) for row in s2r.values()) == [1, 2]
    speeds = _rows(out / "sim2real_runs.csv")  # each run replayed at the speed measured before it
    assert {row["host_speed_from"] for row in speeds} == {"run"} and "at the speed measured right before each" in (
        out / "sim2real.md").read_text()
    assert "Sim-to-real" in (out / "sim2real.md").read_text() and "Sim-to-real" in r.stdout
    # and how to replay them against the machine as it is now
    assert (f"adascale-rl calibrate --env {spec} --out {out / 'now'}" in r.stdout
            and f"--env {out / 'now' / 'MyHost-Digits.yaml'} --host-speed spec --out {out / 'now'}" in r.stdout), r.stdout[-600:]


@pytest.mark.parametrize("args, words", [
    (("--live", "--env", "Local-Digits", "--env", "Rpi4-Vision"), "--live runs one environment at a time"),
    (("--live", "--traces", "rpi4-sim-v2"), "--traces and --env-kwargs are for the simulator"),
    (("--load", "live-quick"), "--load goes with --live"),
    (("--host-probe", "1"), "--host-probe goes with --live"),
])
def test_bench_live_argument_errors(tmp_path, args, words):
    r = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "bench", *args, "--out", str(tmp_path / "b")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "b").exists()


def test_an_interrupted_live_bench_still_tables_the_runs_it_finished(profiled, tmp_path):
    sched = tmp_path / "short.yaml"
    sched.write_text(yaml.safe_dump({"name": "short", "description": "test", "segments": [
        {"duration_s": 2, "request_rate_hz": 40, "deadline_ms": 50}]}))
    out = tmp_path / "lb"
    spec = profiled.out / "MyHost-Digits.yaml"
    p = subprocess.Popen([sys.executable, "-m", "adascale_rl.cli", "bench", "--live", "--env", str(spec), "--quick",
                          "--rounds", "5", "--policies", "static-largest,greedy", "--load", str(sched), "--out",
                          str(out), "--no-progress"], cwd=tmp_path, env=_env(profiled), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         # a test run in the background hands its children SIGINT ignored: Ctrl-C's default here
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = interrupt_when(p, lambda: len(list(out.glob("runs/*/summary.json"))) >= 2, wait_s=240)
    assert p.returncode == 130, err[-2000:]
    finished = [json.loads(f.read_text()) for f in out.glob("runs/*/summary.json")]
    finished = [s for s in finished if not s["interrupted"]]
    rows = _rows(out / "results.csv")
    assert sum(int(r["episodes"]) for r in rows) == len(finished) >= 2
    assert "Interrupted after" in (out / "results.md").read_text() and "Interrupted after" in err
    assert "\ninterrupted\n" not in "\n" + err  # one message, not the CLI's bare "interrupted" line too


def test_a_controller_exported_for_another_catalog_is_refused_before_any_work(profiled, tmp_path):
    folder = tmp_path / "rpi4-selector"  # what export writes for a Raspberry Pi controller, as far as run reads it
    folder.mkdir()
    (folder / "selector.json").write_text(json.dumps({
        "env": {"id": "AdaScale/Rpi4-Vision-v4"}, "policy": {"kind": "network"},
        "variants": [{"id": "w0.35-r96-fp32"}, {"id": "w1.0-r224-fp32"}]}))
    out = tmp_path / "live"
    r = _run(profiled, "--controller", str(folder), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "was exported for AdaScale/Rpi4-Vision-v4" in r.stderr and "--env AdaScale/Rpi4-Vision-v4" in r.stderr
    assert not (out / "intervals.csv").exists()
