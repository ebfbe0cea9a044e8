"""benchmarks/contention.py --from-json: the model held against saved samples, on any machine (no variant files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adascale_rl import paths
from adascale_rl.device import model
from adascale_rl.device.catalog import load_catalog
from adascale_rl.environment.env import noise_quadrature

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("w1-final-r24-fp32", "w1-final-r24-int8", "w1-final-r24-prune")


def _cell(mean_ms: float, n: int = 40) -> dict:
    a = np.full(n, mean_ms).tolist()
    return {"b2b": a, "svc": a, "resp": a, "issued": n, "served": n, "b2b_per_round": [n // 2, n // 2],
            "resp_per_round": [n // 2, n // 2]}


def _saved(tmp_path: Path, levels=(0, 4)) -> Path:
    cat = load_catalog(paths.envs_dir() / "catalogs" / "local-x86.json")
    lat = {v.id: v.latency_ms for v in cat.variants}
    samples = {"_meta": {"levels": list(levels), "rounds": 2, "rate_hz": 60.0, "threads": 1, "cores": 2,
                         "quiet_rates": []}}
    for v in VARIANTS:  # measured: twice the catalog's latency, in every cell
        samples[v] = {"levels": {str(lv): _cell(2.0 * lat[v]) for lv in levels}, "quiet": {}}
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"measured_at": "2026-12-01T00:00:00+0000", "load_average": 0.1, "rounds": 2,
                             "rate": 60.0, "samples": samples}))
    return f


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "contention.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_from_json_compares_the_files_cells_with_the_model(tmp_path):
    res = _bench("--from-json", str(_saved(tmp_path)), "--json", str(tmp_path / "again.json"))
    assert res.returncode == 0, res.stderr
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in VARIANTS]
    assert [(r[0], r[2], r[3]) for r in rows] == [(v, lv, m) for v in VARIANTS for lv in ("0", "4")
                                                  for m in ("b2b", "60Hz")]
    # back to back with no load the model predicts the catalog's latency (half of what the file measured) times
    # the mean of the environments' interval noise and of the frame jitter
    factors, weights = noise_quadrature()
    expected = f"{0.5 * float(np.dot(factors, weights)) * np.exp(0.5 * model.FRAME_SIGMA ** 2) - 1.0:+.0%}"
    assert expected == "-48%"
    quiet_b2b = [r for r in rows if r[2] == "0" and r[3] == "b2b"]
    assert all(r[7] == expected for r in quiet_b2b), quiet_b2b
    # one interval at factor 1: the catalog's latency, the frame jitter's mean (0.5 % above its median) aside
    flat = _bench("--from-json", str(_saved(tmp_path)), "--noise", "none")
    assert flat.returncode == 0, flat.stderr
    assert "intervals' latency noise: none" in flat.stdout
    flat_b2b = [ln.split() for ln in flat.stdout.splitlines()
                if ln.split()[:1] and ln.split()[0] in VARIANTS and ln.split()[2:4] == ["0", "b2b"]]
    assert all(r[7] in ("-50%", "-49%") for r in flat_b2b), flat_b2b
    # the intervals' noise widens the predicted tail: p95 over mean 1.17 (the frame jitter alone) against 1.25
    for r, f in zip(quiet_b2b, flat_b2b):
        assert float(r[10]) / float(r[6]) > 1.23 and float(f[10]) / float(f[6]) < 1.18, (r, f)
    assert "intervals' latency noise: the environments' (log-normal sigma 0.08" in res.stdout
    # the quiet cells round by round (two rounds of one speed here): what calibrate warns about when they differ
    assert "quiet back to back, round by round" in res.stdout
    assert res.stdout.count("(largest / smallest 1.00x); p95 / median within a round 1.00-1.00") == len(VARIANTS)
    assert "NOT within the 20% target" in res.stdout
    again = json.loads((tmp_path / "again.json").read_text())
    assert set(again["samples"]) == set(VARIANTS) | {"_meta"} and len(again["rows"]) == len(rows)


def test_a_re_read_names_the_saved_runs_machine_and_the_settings_its_own_table_used(tmp_path):
    f = _saved(tmp_path)
    res = _bench("--from-json", str(f))  # a file written before --noise: its table had none
    assert res.returncode == 0, res.stderr
    assert ("note: the saved run predicted with --noise none; this table with --noise env (the same measured cells, "
            "other predictions)") in res.stdout
    assert "machine: not recorded in the file (re-read on " in res.stdout
    assert "load average after the run 0.10" in res.stdout  # the file's, not this machine's now
    doc = json.loads(f.read_text())
    doc.update(machine="Linux on a test rig", noise="env", corun={"how": "0.2", "corun_stretch": 0.2})
    f.write_text(json.dumps(doc))
    res = _bench("--from-json", str(f), "--corun", "0.20", "--json", str(tmp_path / "again.json"))
    assert res.returncode == 0, res.stderr
    assert "note:" not in res.stdout and "machine: Linux on a test rig; 2 cores in the model" in res.stdout
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["machine"] == "Linux on a test rig" and again["measured_at"] == doc["measured_at"]
    res = _bench("--from-json", str(f))
    assert "note: the saved run predicted with --corun 0.2; this table with --corun preset" in res.stdout


def test_from_json_names_what_the_file_lacks(tmp_path):
    f = _saved(tmp_path)
    res = _bench("--from-json", str(f), "--levels", "0", "2")
    assert res.returncode == 2 and "has no samples of w1-final-r24-fp32 at 2 busy" in res.stderr
    res = _bench("--from-json", str(tmp_path / "missing.json"))
    assert res.returncode == 2 and "--from-json" in res.stderr and "FileNotFoundError" in res.stderr
    assert "Traceback" not in res.stderr


def test_wake_measured_fits_the_runs_own_wake_up_cost_on_its_quiet_cells(tmp_path):
    """Samples whose quiet responses at 60 Hz exceed the back-to-back service by 1.3 ms (times the share of the
    cost the model gives each variant's sleep): --wake measured finds 1.3 ms + 0 x service, and with the run's
    speed the quiet 60 Hz means come out as measured."""
    import math

    from adascale_rl.device.presets import load_device

    f = _saved(tmp_path)
    doc = json.loads(f.read_text())
    tau = load_device("local-x86").idle_sleep_ms
    for v in VARIANTS:
        cell = doc["samples"][v]["levels"]["0"]
        svc = cell["b2b"][0]
        cell["resp"] = [svc + 1.3 * (1.0 - math.exp(-(1000.0 / 60 - svc) / tau))] * len(cell["resp"])
    f.write_text(json.dumps(doc))
    res = _bench("--from-json", str(f), "--noise", "none", "--service-scale", "measured", "--wake", "measured")
    assert res.returncode == 0, res.stderr
    assert "wake-up cost: measured in this run at 60 Hz with no busy process: 1.300 ms + 0.000 x service" in res.stdout
    assert "the cells no fit saw" in res.stdout
    quiet = [ln.split() for ln in res.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in VARIANTS
             and ln.split()[2:4] == ["0", "60Hz"]]
    assert len(quiet) == 3 and all(abs(int(r[7].rstrip("%"))) <= 2 for r in quiet), quiet
    res = _bench("--from-json", str(f), "--levels", "4", "--wake", "measured")
    assert res.returncode == 2 and "--wake measured needs the level with no busy process" in res.stderr


def test_service_scale_variant_gives_each_variant_its_own_speed(tmp_path):
    """A host that runs one variant 3x slower than its catalog latency and the others 2x (uneven, as int8 and fp32
    kernels on another CPU): one median ratio leaves the odd variant's quiet back-to-back cell 33 % off, each
    variant's own ratio fits every quiet back-to-back cell."""
    f = _saved(tmp_path)
    doc = json.loads(f.read_text())
    odd = VARIANTS[1]
    for lv, cell in doc["samples"][odd]["levels"].items():
        doc["samples"][odd]["levels"][lv] = _cell(1.5 * cell["b2b"][0])
    f.write_text(json.dumps(doc))

    def quiet_b2b(res):
        return {ln.split()[0]: ln.split()[7] for ln in res.stdout.splitlines()
                if ln.split()[:1] and ln.split()[0] in VARIANTS and ln.split()[2:4] == ["0", "b2b"]}

    res = _bench("--from-json", str(f), "--noise", "none", "--service-scale", "measured")
    assert res.returncode == 0, res.stderr
    assert quiet_b2b(res)[odd] == "-33%"
    res = _bench("--from-json", str(f), "--noise", "none", "--service-scale", "variant", "--json", str(tmp_path / "v.json"))
    assert res.returncode == 0, res.stderr
    # within the frame jitter's own mean (a log-normal of sigma 0.1 has its mean 0.5 % above its median)
    assert all(abs(int(e.rstrip("%"))) <= 1 for e in quiet_b2b(res).values()), quiet_b2b(res)
    assert f"{odd} 3.000" in res.stdout and "fitted on the quiet back-to-back cells one by one" in res.stdout
    assert json.loads((tmp_path / "v.json").read_text())["service_scale"][odd] == 3.0
    res = _bench("--from-json", str(f), "--service-scale", "variant", "--levels", "4")
    assert res.returncode == 2 and "--service-scale variant needs the level with no busy process" in res.stderr


def test_the_predicted_p95_of_an_app_that_keeps_up_in_part_is_the_mixtures_p95():
    """Back to back beside 4 busy processes at 400 Hz the app serves part of the requests (capacity, not stale
    drops): the served ones are a fair sample of the response-time mixture, so their p95 is its 0.95 quantile,
    not a quantile pulled down by the share lost."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import contention as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from adascale_rl.device import model
    from adascale_rl.device.presets import load_device

    device = load_device("local-x86")
    mean, p95, lost = bench.predict(3.0, 4, 400.0, device, 1.0)
    c = model.contention(np.float64(3.0), np.float64(400.0), np.float64(4), float(device.cores), 1.0,
                         model.Scheduler.of(device))
    assert lost > 0.5 and float(model.stale_share(c, np.float64(2.5))) < 0.05  # lost to capacity, hardly stale
    kept = 1.0 - float(model.stale_share(c, np.float64(2.5)))
    assert p95 == model.response_quantile(c, 0.95 * kept, model.FRAME_SIGMA)
    assert p95 > model.response_quantile(c, 0.95 * (1.0 - lost), model.FRAME_SIGMA)


def test_a_noise_mixture_counts_each_interval_by_the_requests_it_serves():
    """Two intervals' factors, the slow one beyond the app's capacity at 60 Hz beside 4 busy processes: the predicted
    mean is the served requests' (each point weighted by what it serves), not the points' plain average, and the
    lost share is the points' average."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import contention as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from adascale_rl.device.presets import load_device

    device = load_device("local-x86")
    (m1, _, l1), (m2, _, l2) = (bench.predict(8.0, 4, 60.0, device, 1.0, ((f,), (1.0,))) for f in (1.0, 3.0))
    s1, s2 = 1.0 - l1, 1.0 - l2
    assert s2 < 0.8 * s1  # the slow point serves fewer
    mean, p95, lost = bench.predict(8.0, 4, 60.0, device, 1.0, ((1.0, 3.0), (0.5, 0.5)))
    assert mean == pytest.approx((s1 * m1 + s2 * m2) / (s1 + s2), rel=1e-12)
    assert mean < 0.99 * (m1 + m2) / 2.0
    assert lost == pytest.approx((l1 + l2) / 2.0, rel=1e-12)
    assert m1 < p95


def test_a_saved_run_on_fewer_cores_is_held_against_the_model_of_that_many(tmp_path):
    (tmp_path / "one").mkdir()
    f = _saved(tmp_path / "one")
    doc = json.loads(f.read_text())
    doc["samples"]["_meta"]["cores"] = 1  # as a run pinned with --cpus 0 records it
    f.write_text(json.dumps(doc))
    one = _bench("--from-json", str(f))
    two = _bench("--from-json", str(_saved(tmp_path)))
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert "1 core (the model's; the preset local-x86 has 2)" in one.stdout
    assert "machine: " in two.stdout and "(the model's" not in two.stdout

    def pred(out: str, level: str) -> float:  # the predicted back-to-back mean of the full model at ``level``
        row = next(ln.split() for ln in out.splitlines()
                   if ln.split()[:1] == [VARIANTS[0]] and ln.split()[2:4] == [level, "b2b"])
        return float(row[6])

    # beside 4 busy processes one core gives the app a fifth of it, two cores 2/5: the prediction doubles
    assert pred(one.stdout, "4") == pytest.approx(2.0 * pred(two.stdout, "4"), rel=0.02)
    assert pred(one.stdout, "0") == pytest.approx(pred(two.stdout, "0"), rel=1e-6)


def test_cpus_is_refused_with_from_json_and_for_a_cpu_out_of_reach(tmp_path):
    res = _bench("--from-json", str(_saved(tmp_path)), "--cpus", "0")
    assert res.returncode == 2 and "--cpus" in res.stderr
    res = _bench("--cpus", str(10**6))
    assert res.returncode == 2 and "--cpus" in res.stderr


def test_a_saved_run_that_does_not_say_its_cores_is_read_with_the_presets_and_a_bad_count_is_refused(tmp_path):
    f = _saved(tmp_path)
    doc = json.loads(f.read_text())
    del doc["samples"]["_meta"]["cores"]  # an older file
    f.write_text(json.dumps(doc))
    res = _bench("--from-json", str(f))
    assert res.returncode == 0, res.stderr
    assert "machine: " in res.stdout and "(the model's" not in res.stdout
    doc["samples"]["_meta"]["cores"] = "two"
    f.write_text(json.dumps(doc))
    res = _bench("--from-json", str(f))
    assert res.returncode == 2 and "_meta.cores must be a positive integer" in res.stderr


def test_compare_sets_the_measurement_beside_another_run_and_marks_cells_no_prediction_can_meet(tmp_path):
    f = _saved(tmp_path)
    other = json.loads(f.read_text())
    cells = other["samples"]
    cells["w1-final-r24-int8"]["levels"]["4"]["resp"] = [x * 1.6 for x in cells["w1-final-r24-int8"]["levels"]["4"]["resp"]]
    cells["w1-final-r24-fp32"]["levels"]["0"]["b2b"] = [x * 1.3 for x in cells["w1-final-r24-fp32"]["levels"]["0"]["b2b"]]
    g = tmp_path / "other.json"
    g.write_text(json.dumps(other))
    res = _bench("--from-json", str(f), "--compare", str(g), "--json", str(tmp_path / "out.json"))
    assert res.returncode == 0, res.stderr
    after = res.stdout.split("the measurement against itself")[1]
    rows = {(r[0], r[1], r[2]): r for r in (ln.split() for ln in after.splitlines()) if r[:1] and r[0] in VARIANTS}
    assert len(rows) == 12
    assert rows[("w1-final-r24-int8", "4", "60Hz")][5] == "+60%!"  # 1.6x apart: beyond the 1.5x no model can meet
    assert rows[("w1-final-r24-fp32", "0", "b2b")][5] == "+30%"    # beyond 20 %, but one prediction could meet both
    assert rows[("w1-final-r24-prune", "4", "b2b")][5] == "+0%"
    assert ("beyond 20% of each other 2 of 12 means and 2 of 12 p95s; more than 1.50x apart (no prediction "
            "within 20% of both) 1 means and 1 p95s") in res.stdout
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["compared_with"] == str(g) and sum(r["apart_mean"] for r in saved["comparison"]) == 1


def test_compare_names_what_the_other_run_lacks_before_any_timing(tmp_path):
    f = _saved(tmp_path)
    (tmp_path / "quiet").mkdir()
    g = _saved(tmp_path / "quiet", levels=(0,))
    res = _bench("--from-json", str(f), "--compare", str(g))
    assert res.returncode == 2 and "--compare" in res.stderr and "has no samples of w1-final-r24-fp32 at 4 busy" in res.stderr
    res = _bench("--from-json", str(f), "--compare", str(tmp_path / "missing.json"))
    assert res.returncode == 2 and "--compare" in res.stderr and "FileNotFoundError" in res.stderr
    assert "Traceback" not in res.stderr


def test_corun_measured_fits_the_stretch_beside_a_busy_process_that_leaves_the_app_its_core(tmp_path):
    """Measured 1.2x back to back beside 1 busy process on 2 cores: --corun measured fits 0.2, predicts those cells to
    the sample and counts them fitted; a given number is used as given; no qualifying level is a one-line error."""
    f = _saved(tmp_path, levels=(0, 1, 4))
    doc = json.loads(f.read_text())
    for v in VARIANTS:
        cell = doc["samples"][v]["levels"]["1"]
        cell["b2b"] = [x * 1.2 for x in cell["b2b"]]
    f.write_text(json.dumps(doc))
    res = _bench("--from-json", str(f), "--noise", "none", "--service-scale", "variant", "--corun", "measured")
    assert res.returncode == 0, res.stderr
    assert "measured in this run: 0.2, median over 3 (variant, busy-process count) pairs" in res.stdout
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in VARIANTS]
    b2b_1 = [r for r in rows if r[2] == "1" and r[3] == "b2b"]
    # the model's mean is its median (the run's, through the variant's speed) x exp(sigma^2 / 2): +1 %
    assert len(b2b_1) == 3 and all(r[7] in ("+0%", "+1%") for r in b2b_1), b2b_1
    plain = _bench("--from-json", str(f), "--noise", "none", "--service-scale", "variant")
    rows0 = [ln.split() for ln in plain.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in VARIANTS]
    assert all(r[7] in ("-17%", "-16%") for r in rows0 if r[2] == "1" and r[3] == "b2b")  # 1 / 1.2 - 1
    given = _bench("--from-json", str(f), "--service-scale", "variant", "--corun", "0.1")
    assert given.returncode == 0 and "co-runners' lengthening of the service: given (0.1)" in given.stdout
    res = _bench("--from-json", str(_saved(tmp_path / "..", levels=(0, 4))), "--corun", "measured")
    assert res.returncode == 2 and "no level of 0 4 busy processes leaves the app's 1 thread(s) a core" in res.stderr
    res = _bench("--from-json", str(f), "--corun", "-1")
    assert res.returncode == 2 and "--corun must be" in res.stderr
