"""Recording the live context: real samples, always a valid dataset, even when interrupted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
import pytest

from adascale_rl.context.monitor import Monitor
from adascale_rl.context.recorder import RecordError, host_id, machine_description, record, record_command
from adascale_rl.context.traces import load_dataset, make_meta, save_dataset

CLI = [sys.executable, "-m", "adascale_rl.cli"]


def test_short_recording_is_a_valid_dataset(tmp_path):
    out = tmp_path / "mine-v2"
    res = record(out, 1.5, 0.5, note="idle test machine", progress=False)
    assert res.rows == res.planned_rows == 3 and res.interrupted is None
    ds = load_dataset(out)
    assert ds.name == "mine-v2" and ds.meta["source"] == "recorded" and ds.device == host_id()
    assert ds.period_s == 0.5 and ds.mem_total_mb == pytest.approx(psutil.virtual_memory().total / 2**20, rel=1e-3)
    (tr,) = ds.train
    assert np.array_equal(tr.data["t_s"], [0.0, 0.5, 1.0])  # nominal, exactly regular
    assert tr.columns == ["t_s"] + Monitor().available()
    assert np.all((tr.data["bg_cpu_util"] >= 0) & (tr.data["bg_cpu_util"] <= 1))
    assert np.all(tr.data["mem_avail_mb"] > 0)
    text = (out / "schema.json").read_text()
    meta = json.loads(text)
    assert "idle test machine" in meta["how_made"] and meta["licence"]
    entry = meta["files"][f"train/{res.path.stem}.csv"]
    assert entry["rows"] == 3 and entry["interrupted"] is None and entry["note"] == "idle test machine"
    host = socket.gethostname()
    if len(host) >= 4:
        assert host not in text, "the machine description must not carry the hostname"
    assert host not in machine_description() or len(host) < 4


def test_a_second_recording_appends_and_mismatches_are_refused(tmp_path):
    out = tmp_path / "host-v1"
    record(out, 0.5, 0.5, name="first", progress=False)
    record(out, 0.5, 0.5, split="test", name="second", note="second run", progress=False)
    ds = load_dataset(out)
    assert [t.name for t in ds.train + ds.test] == ["host-v1/train/first.csv", "host-v1/test/second.csv"]
    assert "second run" in ds.meta["how_made"]
    with pytest.raises(RecordError, match="has period 0.5 s; record with --interval 0.5"):
        record(out, 1, 1.0, name="third", progress=False)
    with pytest.raises(RecordError, match="already exists; choose another --name"):
        record(out, 0.5, 0.5, name="first", progress=False)
    assert [t.name for t in load_dataset(out).train] == ["host-v1/train/first.csv"]


def test_refuses_to_append_to_incompatible_folders(tmp_path):
    cols = ["t_s", "bg_cpu_util", "mem_avail_mb"]
    sim = make_meta(name="s", version=1, device=host_id(), device_mem_total_mb=100, period_s=0.5,
                    source="simulated", how_made="tests", columns=cols)
    save_dataset(tmp_path / "s-v1", sim, {"train": {"a": {c: np.arange(2.0) * 0.5 if c == "t_s" else np.zeros(2)
                                                        for c in cols}}})
    with pytest.raises(RecordError, match="holds a simulated dataset"):
        record(tmp_path / "s-v1", 0.5, 0.5, progress=False)
    other = dict(sim, source="recorded", device="local-elsewhere")
    save_dataset(tmp_path / "o-v1", other, {"train": {"a": {c: np.zeros(2) if c != "t_s" else np.array([0, 0.5])
                                                        for c in cols}}})
    with pytest.raises(RecordError, match="was recorded on device 'local-elsewhere'"):
        record(tmp_path / "o-v1", 0.5, 0.5, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(RecordError, match="without schema.json"):
        record(tmp_path / "junk", 0.5, 0.5, progress=False)


@pytest.mark.parametrize("kw,match", [
    (dict(duration_s=0, interval_s=1), "--duration must be a positive number"),
    (dict(duration_s=float("nan"), interval_s=1), "--duration must be a positive number"),
    (dict(duration_s=1, interval_s=0.001), "--interval must be at least 0.05 s"),
    (dict(duration_s=0.5, interval_s=1), "shorter than one --interval"),
    (dict(duration_s=1, interval_s=1, split="valid"), "--split must be one of train, test"),
    (dict(duration_s=1, interval_s=1, name="../x"), "must be a plain file stem"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kw, match):
    with pytest.raises(RecordError, match=match):
        record(tmp_path / "r-v1", progress=False, **kw)
    assert not (tmp_path / "r-v1").exists()


def test_a_sensor_that_disappears_is_carried_forward(tmp_path):
    f = psutil.cpu_freq()
    if f is not None and f.max and f.max > 0:
        pytest.skip("psutil reports a hardware maximum clock here, so a vanished cpufreq file has a fallback")
    d = tmp_path / "sys" / "cpufreq" / "policy0"
    d.mkdir(parents=True)
    (d / "scaling_max_freq").write_text("1500000\n")
    monitor = Monitor(sysfs_cpu=tmp_path / "sys")
    threading.Timer(0.55, (d / "scaling_max_freq").unlink).start()
    res = record(tmp_path / "r-v1", 1.5, 0.25, monitor=monitor, progress=False)
    assert "freq_cap_mhz" in res.columns
    assert res.carried_forward.get("freq_cap_mhz", 0) >= 2
    tr = load_dataset(tmp_path / "r-v1").train[0]
    assert np.all(tr.data["freq_cap_mhz"] == 1500.0)
    entry = json.loads((tmp_path / "r-v1" / "schema.json").read_text())["files"][f"train/{res.path.stem}.csv"]
    assert entry["carried_forward"]["freq_cap_mhz"] == res.carried_forward["freq_cap_mhz"]


def _wait_rows(csv: Path, rows: int, proc, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if csv.exists() and len(csv.read_text().splitlines()) > rows:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the recorder did not write rows in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_recording_still_validates(tmp_path, sig):
    out = tmp_path / "cut-v1"
    proc = subprocess.Popen(CLI + ["record", "--duration", "60", "--interval", "0.1", "--out", str(out),
                                   "--name", "cut", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_rows(out / "train" / "cut.csv", 4, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert f"stopped early by {sig.name}" in stdout
    ds = load_dataset(out)
    rows = len(ds.train[0])
    assert 4 <= rows < 600
    entry = json.loads((out / "schema.json").read_text())["files"]["train/cut.csv"]
    assert entry["rows"] == rows and entry["interrupted"] == sig.name
    assert subprocess.run(CLI + ["traces", "validate", str(out)], capture_output=True).returncode == 0


def test_interrupted_before_the_first_sample_leaves_nothing(tmp_path):
    out = tmp_path / "none-v1"
    proc = subprocess.Popen(CLI + ["record", "--duration", "60", "--interval", "20", "--out", str(out),
                                   "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 30
    while not (out / "schema.json").exists():
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "nothing was written" in stderr
    assert not out.exists()


def test_cli_record_then_validate(tmp_path):
    out = tmp_path / "cli-v1"
    r = subprocess.run(CLI + ["record", "--duration", "3", "--interval", "0.5", "--out", str(out), "--note", "ci"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "wrote 6 rows" in r.stdout and "sample" in r.stderr  # tqdm bar on stderr
    v = subprocess.run(CLI + ["traces", "validate", str(out)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stderr
    assert "valid recorded dataset cli-v1" in v.stdout and "6 rows at 0.5 s" in v.stdout
    # folders and files as open() and mkdir() make them under this umask (not tempfile's 0700 / 0600)
    umask = os.umask(0o022)
    os.umask(umask)
    for p in (out, out / "train"):
        assert p.stat().st_mode & 0o777 == 0o777 & ~umask, p
    for p in (out / "schema.json", out / "MANIFEST", *out.glob("train/*.csv")):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


def test_record_command_reports_user_errors(tmp_path, capsys):
    from adascale_rl import cli

    assert cli.main(["record", "--duration", "-1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "adascale-rl record: error: --duration must be a positive number of seconds, not -1.0"
    args = SimpleNamespace(out=str(tmp_path / "y-v1"), duration=0.5, interval=0.5, split="train", name="n",
                           note="", no_progress=True)
    assert record_command(args) == 0
    assert "wrote 1 row (" in capsys.readouterr().out


def test_shipped_recorded_dataset_is_valid_and_documented():
    from adascale_rl import paths
    from adascale_rl.context.traces import read_manifest

    root = paths.traces_dir() / "host-recorded-v2"
    ds = load_dataset(root)
    assert ds.meta["source"] == "recorded" and ds.period_s == 1.0 and ds.device.startswith("local-")
    assert len(ds.train) >= 2 and len(ds.test) >= 1
    assert 300 <= sum(len(t) for t in ds.train) <= 600 and sum(len(t) for t in ds.test) < sum(len(t) for t in ds.train)
    assert "record.sh" in read_manifest(root)  # the load schedule ships with the data, checksummed
    for rel, entry in ds.meta["files"].items():
        assert entry["note"] and entry["rows"] == entry["planned_rows"] and not entry["interrupted"], rel
        assert rel in ds.meta["how_made"]
    for t in ds.train + ds.test:
        assert np.array_equal(t.data["t_s"], np.arange(len(t), dtype=float))


# --------------------------------------------------------------------------- bg_runnable

def _fake_proc(root: Path, running: int) -> Path:
    """A /proc tree where this process has one running thread and the machine ``running`` runnable ones."""
    task = root / str(os.getpid()) / "task" / str(os.getpid())
    task.mkdir(parents=True)
    (task / "stat").write_text(f"{os.getpid()} (python3) R 1 1 1 0 -1\n")
    (root / "stat").write_text(f"cpu  1 2 3 4\nprocs_running {running}\nprocs_blocked 0\n")
    return root


def _sampler_threads() -> int:
    return sum(t.name == "adascale-runqueue-sampler" for t in threading.enumerate())


@pytest.mark.skipif(Monitor().sensors()["bg_runnable"] is None, reason="no /proc run queue on this platform")
def test_recording_here_has_the_run_queue_sampled_at_the_documented_rate(tmp_path):
    from adascale_rl.context.monitor import RUNNABLE_HZ

    out = tmp_path / "rq-v1"
    before = _sampler_threads()
    res = record(out, 1.0, 0.5, progress=False)
    assert _sampler_threads() == before, "the recorder's sampler thread must end with the recording"
    assert res.columns[:3] == ["t_s", "bg_cpu_util", "bg_runnable"]
    tr = load_dataset(out).train[0]
    assert np.all(tr.data["bg_runnable"] >= 0)
    for line in res.path.read_text().splitlines()[1:]:
        cell = line.split(",")[2]
        assert len(cell.partition(".")[2]) <= 2, f"bg_runnable {cell} has more than 2 decimals"
    meta = json.loads((out / "schema.json").read_text())
    assert RUNNABLE_HZ == 20 and meta["files"][f"train/{res.path.stem}.csv"]["bg_runnable_hz"] == RUNNABLE_HZ
    assert "procs_running" in meta["how_made"] and "at 20 Hz over the interval" in meta["how_made"]


def test_recorded_run_queue_is_what_proc_says_minus_our_own_thread(tmp_path):
    root = _fake_proc(tmp_path / "proc", 6)
    monitor = Monitor(proc_root=root, runnable_hz=50)
    res = record(tmp_path / "f-v1", 1.0, 0.5, monitor=monitor, progress=False)
    assert not monitor.sampling and _sampler_threads() == 0
    assert "bg_runnable" in res.columns
    assert np.all(load_dataset(tmp_path / "f-v1").train[0].data["bg_runnable"] == 5.0)
    assert "at 50 Hz" in json.loads((tmp_path / "f-v1" / "schema.json").read_text())["how_made"]


def test_a_monitor_without_a_sampler_records_one_sample_per_row_and_says_so(tmp_path):
    root = _fake_proc(tmp_path / "proc", 3)
    res = record(tmp_path / "g-v1", 0.5, 0.5, monitor=Monitor(proc_root=root), progress=False)
    meta = json.loads((tmp_path / "g-v1" / "schema.json").read_text())
    assert meta["files"][f"train/{res.path.stem}.csv"]["bg_runnable_hz"] is None
    assert "one instantaneous sample per row" in meta["how_made"]
    assert load_dataset(tmp_path / "g-v1").train[0].data["bg_runnable"].tolist() == [2.0]


def test_a_caller_s_running_sampler_is_left_running(tmp_path):
    root = _fake_proc(tmp_path / "proc", 2)
    with Monitor(proc_root=root, runnable_hz=50) as monitor:
        record(tmp_path / "h-v1", 0.5, 0.5, monitor=monitor, progress=False)
        assert monitor.sampling
    assert not monitor.sampling and _sampler_threads() == 0


def test_no_run_queue_no_column(tmp_path):
    res = record(tmp_path / "n-v1", 0.5, 0.5, monitor=Monitor(proc_root=tmp_path / "nothing", runnable_hz=20),
                 progress=False)
    assert "bg_runnable" not in res.columns and _sampler_threads() == 0
    meta = json.loads((tmp_path / "n-v1" / "schema.json").read_text())
    assert "bg_runnable" not in meta["how_made"] and "bg_runnable_hz" not in meta["files"][f"train/{res.path.stem}.csv"]


def test_a_load_segment_that_never_held_is_noted_in_the_dataset_and_said(tmp_path, monkeypatch, capsys):
    """A memory hog slower than its segment: the recording keeps the schedule as written in its note, and says
    which segments did not hold (schema.json's load_shortfalls, a note on stderr)."""
    from adascale_rl.context import load as load_mod

    real_enter = load_mod.MemoryHog.__enter__

    def slow(self):
        if self.mb:
            time.sleep(1.2)
        return real_enter(self)

    monkeypatch.setattr(load_mod.MemoryHog, "__enter__", slow)
    schedule = load_mod.LoadSchedule("slow-hog", [load_mod.Segment(0.5), load_mod.Segment(0.5, memory_mb=16),
                                                  load_mod.Segment(2.0)])
    out = tmp_path / "loaded-v1"
    monkeypatch.setattr("adascale_rl.context.load.LoadSchedule.load", classmethod(lambda cls, name: schedule))
    args = SimpleNamespace(out=str(out), duration=None, interval=0.5, split="train", name=None, note="",
                           no_progress=True, load="slow-hog")
    assert record_command(args) == 0
    entry = next(iter(json.loads((out / "schema.json").read_text())["files"].values()))
    assert "load schedule slow-hog: 0-0.5 s quiet; 0.5-1 s 16 MiB held; 1-3 s quiet" in entry["note"]
    (said,) = entry["load_shortfalls"]
    assert said.startswith("load segment 1 (0.5-1 s: 0 busy, 16 MiB) never held")
    assert f"note: {said}; the recording's note gives the schedule as written" in capsys.readouterr().err
