"""``adascale-rl traces resample``: jittered timestamps onto a regular grid; ``traces validate``
on a plain folder of trace CSVs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adascale_rl.context.resample import nominal_period, read_irregular, resample_path
from adascale_rl.context.traces import TraceError, load_dataset, load_trace, make_meta

CLI = [sys.executable, "-m", "adascale_rl.cli"]
#: what another recorder writes: the time each sample was taken, late by a few ms, once by 120 ms
JITTERED = ("t_s,bg_cpu_util,mem_avail_mb,plugged\n"
            "0,0.10,1000,1\n1.006,0.20,1010,1\n2.017,0.30,1020,1\n3.137,0.40,1030,0\n4.141,0.50,1040,0\n"
            "5.139,0.60,1050,0\n")


def _cli(*args, cwd):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_validate_points_a_jittered_trace_to_resample_which_fixes_it(tmp_path):
    (tmp_path / "rec.csv").write_text(JITTERED)
    bad = _cli("traces", "validate", "rec.csv", cwd=tmp_path)
    assert bad.returncode == 1
    assert "rec.csv, line 5, column 't_s': timestamps are irregular: step 1.12 s" in bad.stderr
    assert "adascale-rl traces resample" in bad.stderr
    res = _cli("traces", "resample", "rec.csv", "--out", "rec-1s.csv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "wrote rec-1s.csv: 1 trace of rec.csv on a regular 1 s grid" in res.stdout
    assert _cli("traces", "validate", "rec-1s.csv", cwd=tmp_path).returncode == 0
    tr = load_trace(tmp_path / "rec-1s.csv")
    assert tr.period_s == 1.0 and list(tr.data["t_s"]) == [0, 1, 2, 3, 4, 5]
    # linear between neighbours: at 3 s, between 2.017 s (0.30) and 3.137 s (0.40)
    assert tr.data["bg_cpu_util"][3] == pytest.approx(0.30 + 0.10 * (3 - 2.017) / (3.137 - 2.017), abs=1e-4)
    assert list(tr.data["plugged"]) == [1, 1, 1, 1, 0, 0]  # a flag is held from the sample before, not blended
    assert (tmp_path / "rec.csv").read_text() == JITTERED  # the input is left as it was


def test_validate_takes_a_plain_folder_of_csvs_as_bench_does(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    for i in range(2):
        (mine / f"r{i}.csv").write_text("t_s,bg_cpu_util,mem_avail_mb\n0,0.1,500\n1,0.2,500\n2,0.3,500\n")
    ok = _cli("traces", "validate", str(mine), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "valid folder of 2 trace CSV files (no schema.json: no device, no splits), 6 rows at 1 s" in ok.stdout
    (mine / "r1.csv").write_text("t_s,bg_cpu_util,mem_avail_mb\n0,0.1,500\n")
    bad = _cli("traces", "validate", str(mine), cwd=tmp_path)
    assert bad.returncode == 1 and "r1.csv: a single-row trace has no period" in bad.stderr


def test_a_folder_is_resampled_all_or_nothing(tmp_path):
    src = tmp_path / "mine"
    src.mkdir()
    (src / "a.csv").write_text(JITTERED)
    (src / "b.csv").write_text(JITTERED.replace("0.40", "x"))
    with pytest.raises(TraceError, match=r"b\.csv, line 5, column 'bg_cpu_util': 'x' is not a number"):
        resample_path(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    (src / "b.csv").write_text(JITTERED)
    out, period, n = resample_path(src, tmp_path / "out", period_s=0.5)
    assert (period, n) == (0.5, 2) and sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    assert len(load_trace(out / "a.csv")) == 11
    with pytest.raises(FileExistsError, match="exists; resample writes a new file or folder"):
        resample_path(src, out)


def test_a_dataset_is_resampled_into_a_dataset(tmp_path):
    src = tmp_path / "theirs-v1"
    (src / "train").mkdir(parents=True)
    (src / "train" / "day1.csv").write_text(JITTERED)
    meta = make_meta(name="theirs", version=1, device="local-x86", device_mem_total_mb=8000, period_s=1.0,
                     source="recorded", how_made="their recorder", columns=["t_s", "bg_cpu_util", "mem_avail_mb",
                                                                            "plugged"])
    (src / "schema.json").write_text(json.dumps(meta))
    digest = hashlib.sha256(JITTERED.encode()).hexdigest()
    (src / "MANIFEST").write_text(f"{digest}  train/day1.csv\n")
    with pytest.raises(TraceError, match="irregular"):
        load_dataset(src)
    res = _cli("traces", "resample", str(src), "--out", str(tmp_path / "theirs-v2"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    ds = load_dataset(tmp_path / "theirs-v2")
    assert ds.period_s == 1.0 and [len(t) for t in ds.train] == [6] and ds.device == "local-x86"
    assert "their recorder" in ds.meta["how_made"] and "Resampled with `adascale-rl traces resample`" in ds.meta["how_made"]


def test_bad_requests_are_one_sentence(tmp_path):
    (tmp_path / "rec.csv").write_text(JITTERED)
    for args, words in ((["nope.csv", "--out", "x.csv"], "nope.csv: no such file or folder"),
                        (["rec.csv", "--out", "x.csv", "--period", "0"], "--period must be a positive number"),
                        (["rec.csv", "--out", "rec.csv"], "rec.csv exists")):
        res = _cli("traces", "resample", *args, cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and words in res.stderr, (args, res.stderr)
        assert not (tmp_path / "x.csv").exists()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-0.3, 0.3), min_size=2, max_size=60), st.floats(0.2, 5.0),
       st.lists(st.floats(0, 1), min_size=61, max_size=61))
def test_property_any_jitter_gives_a_regular_trace_within_the_samples(tmp_path_factory, jitter, period, cpu):
    t = np.cumsum([period * (1 + j) for j in jitter])
    t = np.round(t - t[0], 6)
    rows = "".join(f"{float(a)!r},{round(c, 4)!r},500\n" for a, c in zip(t, cpu))
    src = tmp_path_factory.mktemp("p") / "j.csv"
    src.write_text("t_s,bg_cpu_util,mem_avail_mb\n" + rows)
    out, used, _ = resample_path(src, src.with_name("r.csv"))
    assert used == nominal_period([read_irregular(src)])
    tr = load_trace(out, period_s=used)  # validates at the declared period
    assert tr.data["t_s"][-1] <= t[-1] + 1e-6 and np.allclose(np.diff(tr.data["t_s"]), used, atol=1e-6)
    values = np.array([round(c, 4) for c in cpu[: len(t)]])
    assert values.min() - 1e-4 <= tr.data["bg_cpu_util"].min() and tr.data["bg_cpu_util"].max() <= values.max() + 1e-4
