"""``adascale-rl bench`` and ``adascale-rl evaluate`` end to end, through a subprocess, on a fixture."""

from __future__ import annotations

import ast
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _envdata import write_env

COLUMNS = ["policy", "kind", "mean_return", "ci95_return", "effective_accuracy", "miss_rate", "mean_latency_ms",
           "energy_j", "oom_kills", "switches", "return_vs_oracle"]


def _spec_file(tmp_path):
    spec = write_env(tmp_path, steps=40)
    f = tmp_path / "Fixture-Test.yaml"
    f.write_text(yaml.safe_dump({"id": spec.id, "description": "fixture", "device": spec.device,
                                 "catalog": spec.catalog, "dataset": spec.dataset, "reward": "balanced",
                                 "period_s": 1.0, "max_episode_steps": 40}))
    return f


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "adascale_rl.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_bench_writes_csv_markdown_and_plots(tmp_path):
    spec = _spec_file(tmp_path)
    out = tmp_path / "bench"
    res = _cli("bench", "--env", str(spec), "--quick", "--seeds", "2", "--out", str(out), "--no-progress",
               "--policies", "static-largest,static-smallest,greedy,planner,oracle", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert set(COLUMNS) <= set(rows[0])
    by = {r["policy"]: r for r in rows}
    assert set(by) == {"static-largest", "static-smallest", "greedy", "planner", "oracle"}
    assert by["oracle"]["kind"] == "reference" and by["greedy"]["kind"] == "heuristic"
    assert float(by["oracle"]["return_vs_oracle"]) == 1.0
    assert all(float(r["mean_return"]) <= float(by["oracle"]["mean_return"]) + 1e-9 for r in rows)
    md = (out / "results.md").read_text()
    assert "| policy |" in md and "Evaluation seeds: [0, 1]" in md
    # every column of the table is defined under it, with its unit or what it is per
    header = next(line for line in md.splitlines() if line.startswith("| policy |"))
    for cell in [c.strip() for c in header.strip("|").split("|")][2:]:
        assert f"- **{cell.split(' (mean')[0]}**: " in md, cell
    assert "in joules" in md and "in milliseconds" in md and "per episode" in md
    assert "`exact-one-step`" in md and "not a bound" in md
    assert "An episode is one window of up to 40 intervals of 1 s" in md
    # the terminal gets the table and the notes; the definitions stay in the file
    assert "| greedy | heuristic |" in res.stdout and "(Every column is defined in results.md" in res.stdout
    assert "- **miss rate**" not in res.stdout and "the oracle scores at least as high" in res.stdout
    assert (out / "returns.png").stat().st_size > 1000
    assert (out / "timeline-Fixture-Test.png").stat().st_size > 1000


def test_results_doc_defines_what_results_md_defines():
    from adascale_rl.evaluation.report import COLUMNS, DEFINITIONS

    doc = Path(__file__).resolve().parents[2] / "docs" / "RESULTS.md"
    if not doc.exists():
        pytest.skip("docs/ is not installed with the package")
    text = doc.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for name, _ in DEFINITIONS:
        assert any(line.startswith(f"| {name}") for line in rows), name
    for col in COLUMNS[3:]:
        assert f"`{col}`" in text, col
    assert "**not a bound**" in text


def test_evaluate_prints_metrics_and_bad_policy_is_one_sentence(tmp_path):
    spec = _spec_file(tmp_path)
    res = _cli("evaluate", "--env", str(spec), "--policy", "greedy", "--seeds", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "effective_accuracy" in res.stdout and "episodes=" in res.stdout
    bad = _cli("evaluate", "--env", str(spec), "--policy", "clever", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "unknown policy 'clever'" in bad.stderr


def test_evaluate_on_a_folder_of_the_users_trace_csvs(tmp_path):
    from _envdata import constant_trace
    from adascale_rl.context.traces import trace_to_csv

    spec = _spec_file(tmp_path)
    mine = tmp_path / "my-recordings"
    mine.mkdir()
    for i in range(2):
        d = constant_trace(60, bg_cpu_util=0.3 * i)
        (mine / f"rec{i}.csv").write_text(trace_to_csv(["t_s", "bg_cpu_util", "mem_avail_mb"], d))
    res = _cli("evaluate", "--env", str(spec), "--policy", "greedy", "--seeds", "1", "--traces", str(mine), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "episodes=2" in res.stdout
    (mine / "rec1.csv").write_text("t_s,bg_cpu_util,mem_avail_mb\n0,0.1,500\n1,x,500\n")
    bad = _cli("evaluate", "--env", str(spec), "--policy", "greedy", "--traces", str(mine), cwd=tmp_path)
    assert bad.returncode == 2 and "rec1.csv, line 3, column 'bg_cpu_util'" in bad.stderr


def test_slow_diagnostics_run_only_when_named():
    from adascale_rl.evaluation.bench import OPT_IN, builtin_names
    from adascale_rl.policies import BUILTIN

    default = builtin_names(None)
    assert "context-oracle" in OPT_IN and "context-oracle" in BUILTIN
    assert "context-oracle" not in default and {"oracle", "planner", "greedy"} <= set(default)
    assert builtin_names(["planner", "context-oracle", "runs/x"]) == [n for n in BUILTIN if n in ("planner", "context-oracle")]


def test_env_kwargs_reach_every_environment_and_bad_ones_are_one_sentence(tmp_path):
    spec = _spec_file(tmp_path)

    def score(*extra):
        res = _cli("evaluate", "--env", str(spec), "--policy", "static-largest", "--seeds", "2", *extra, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        return float(res.stdout.split("return", 1)[1].split()[0]), res.stdout

    plain, _ = score()
    saver, out = score("--env-kwargs", "reward=energy-saver")
    assert saver != plain and "env_kwargs={'reward': 'energy-saver'}" in out
    for bad, words in ((["bogus=1"], "unknown environment argument(s) bogus"),
                       (["dataset=elsewhere"], "dataset=... is not taken here"),
                       (["spike_spell_s=0.5"], "spike_spell_s must be at least 1 s"),
                       (["spike_prob=null"], "spike_prob must be a finite number")):
        for cmd in ("evaluate", "bench"):
            args = ["--env", str(spec), "--env-kwargs", *bad, "--out", str(tmp_path / "b"), "--no-progress"]
            res = _cli(cmd, *(args if cmd == "bench" else [*args[:4], "--policy", "greedy"]), cwd=tmp_path)
            assert res.returncode == 2 and res.stderr.count("\n") == 1 and words in res.stderr, (cmd, res.stderr)


def test_bench_runs_under_env_kwargs_and_notes_a_controller_trained_under_others(tmp_path):
    from adascale_rl.evaluation.bench import bench, trained_with
    from adascale_rl.environment.spec import load_spec
    from adascale_rl.policies import make_policy
    from adascale_rl.policies.ppo import load_policy

    spec = load_spec(_spec_file(tmp_path))
    kw = {"reward": "energy-saver", "spike_spell_s": 5}
    rows = bench([str(spec.path)], seeds=1, quick=True, out=tmp_path / "b", policies=["greedy", "static-largest"],
                 progress=False, env_kwargs=kw)
    plain = bench([str(spec.path)], seeds=1, quick=True, out=tmp_path / "p", policies=["greedy", "static-largest"],
                  progress=False)
    assert [r["mean_return"] for r in rows] != [r["mean_return"] for r in plain]
    assert "environment arguments: {'reward': 'energy-saver', 'spike_spell_s': 5}" in (tmp_path / "b" / "results.md").read_text()
    assert {r["env_kwargs"] for r in rows} == {'{"reward": "energy-saver", "spike_spell_s": 5}'}
    assert {r["env_kwargs"] for r in plain} == {"{}"}
    shipped = load_policy("Rpi4-Vision/ppo")  # trained with no environment arguments
    assert trained_with(shipped, {}) is None
    assert "trained with environment arguments none and is evaluated here with {'reward': 'energy-saver'" in \
        trained_with(shipped, kw)
    assert trained_with(make_policy("greedy"), kw) is None  # a heuristic has no training run
    from adascale_rl.environment.spec import find_spec

    rpi4 = find_spec("Rpi4-Vision")
    assert trained_with(shipped, {}, rpi4) is None
    both = trained_with(shipped, kw, find_spec("Pixel4-Vision"))
    assert "ppo was trained on AdaScale/Rpi4-Vision-v4 and is evaluated here on AdaScale/Pixel4-Vision-v4; " in both
    assert "trained with environment arguments none" in both
    copy = tmp_path / "now" / "Rpi4-Vision.yaml"  # a copy of the same id elsewhere (as calibrate writes one)
    copy.parent.mkdir()
    copy.write_text(rpi4.path.read_text())
    assert "the same id, AdaScale/Rpi4-Vision-v4" in trained_with(shipped, {}, find_spec(str(copy)))


def test_vs_oracle_is_na_with_a_note_where_the_oracles_return_is_not_positive(tmp_path, monkeypatch):
    """A ratio of negative returns reads backwards (the worse policy the larger): n/a, and a note says why."""
    from adascale_rl.evaluation import bench as b

    real = b.aggregate

    def shifted(results, seeds):  # every return 1000 lower: the oracle's below zero
        a = dict(real(results, seeds))
        a["return"] -= 1000.0
        return a

    monkeypatch.setattr(b, "aggregate", shifted)
    rows = b.bench([str(_spec_file(tmp_path))], seeds=1, quick=True, out=tmp_path / "b",
                   policies=["greedy", "oracle"], progress=False, jobs=1)
    assert all(r["mean_return"] < 0 for r in rows)
    assert all(r["return_vs_oracle"] != r["return_vs_oracle"] for r in rows)  # nan
    md = (tmp_path / "b" / "results.md").read_text()
    assert "not positive: 'vs oracle' is n/a; compare the returns" in md


def test_bench_tunes_the_heuristics_under_the_env_kwargs(tmp_path, monkeypatch):
    from adascale_rl.evaluation import bench as bench_mod
    from adascale_rl.environment.spec import load_spec

    seen = []
    real = bench_mod.tuned_params

    def spy(name, train_env, quick=False):
        seen.append((name, train_env.split, train_env.spike_spell_s, train_env.reward_fn))
        return real(name, train_env, quick)

    monkeypatch.setattr(bench_mod, "tuned_params", spy)
    spec = load_spec(_spec_file(tmp_path))
    bench_mod.bench([str(spec.path)], seeds=1, quick=True, out=tmp_path / "b", policies=["greedy"], progress=False,
                    env_kwargs={"spike_spell_s": 4, "reward": "energy-saver"})
    from adascale_rl.environment.reward import make_reward

    assert [(n, s, sp) for n, s, sp, _ in seen] == [("greedy", "train", 4.0)]
    assert seen[0][3] == make_reward("energy-saver")


def test_numpy_env_kwargs_are_written_as_plain_numbers():
    import json

    import numpy as np

    from adascale_rl.evaluation.bench import _plain

    assert json.loads(json.dumps({"spike_spell_s": np.int64(8), "latency_sigma": np.float64(0.1)}, default=_plain)) \
        == {"spike_spell_s": 8, "latency_sigma": 0.1}


def test_seed_counts_below_one_are_refused_not_replaced_or_nan(tmp_path):
    spec = _spec_file(tmp_path)
    out = tmp_path / "b"
    for seeds in ("0", "-1"):
        res = _cli("bench", "--env", str(spec), "--seeds", seeds, "--out", str(out), "--no-progress", cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert f"--seeds {seeds}: give at least 1 evaluation seed" in res.stderr
        ev = _cli("evaluate", "--env", str(spec), "--policy", "greedy", "--seeds", seeds, cwd=tmp_path)
        assert ev.returncode == 2 and f"--seeds {seeds}: give at least 1" in ev.stderr and "nan" not in ev.stdout
    assert not out.exists()


def test_bench_in_worker_processes_gives_the_numbers_of_one_process(tmp_path):
    """--jobs splits the oracle and the learned controllers by seed and runs every other policy (tuning included)
    as one job: the same numbers, in the same order, as in one process. random carries its generator across
    episodes and best-fixed shows its tuned variant's id: both must come out the same."""
    from adascale_rl.evaluation.bench import bench

    spec = _spec_file(tmp_path)
    common = dict(seeds=2, quick=True, progress=False, policies=["random", "greedy", "best-fixed", "oracle"])
    one = bench([str(spec)], out=tmp_path / "one", jobs=1, **common)
    two = bench([str(spec)], out=tmp_path / "two", jobs=2, **common)
    assert [r["policy"] for r in one] == [r["policy"] for r in two]
    assert sorted(r["policy"] for r in two) == sorted(common["policies"])
    assert repr(one) == repr(two)  # every number (nan where there is no static-largest) and the params, exactly
    assert (tmp_path / "one" / "results.csv").read_text() == (tmp_path / "two" / "results.csv").read_text()
    assert "best-fixed" in (tmp_path / "two" / "results.md").read_text()


def test_evaluate_splits_the_oracle_by_seed_and_prints_the_numbers_of_one_process(tmp_path):
    spec = _spec_file(tmp_path)
    outs = {}
    for jobs in ("1", "2"):
        res = _cli("evaluate", "--env", str(spec), "--policy", "oracle", "--seeds", "2", "--jobs", jobs,
                   "--no-progress", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        outs[jobs] = res.stdout
    assert "return" in outs["1"] and outs["1"] == outs["2"]
    bad = _cli("evaluate", "--env", str(spec), "--policy", "oracle", "--jobs", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--jobs 0: give at least 1" in bad.stderr and "Traceback" not in bad.stderr


def test_evaluate_splits_a_shipped_controller_by_seed_with_the_numbers_of_one_process(tmp_path):
    """Rpi4-Vision's test split: 31 windows a seed, played side by side in one process and in each worker."""
    outs = {}
    for jobs in ("1", "2"):
        res = _cli("evaluate", "--env", "Rpi4-Vision", "--policy", "ppo", "--seeds", "2", "--jobs", jobs,
                   "--no-progress", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        outs[jobs] = res.stdout
    assert "policy=ppo episodes=62" in outs["1"] and outs["1"] == outs["2"]


def test_torch_threads_holds_the_count_for_the_block_and_restores_it():
    import torch

    from adascale_rl.policies.rollout import torch_threads

    default = torch.get_num_threads()
    torch.set_num_threads(2)  # whatever this machine's default: a count the block changes
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(default)


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_bench_refuses_a_jobs_count_below_one(tmp_path, jobs):
    from adascale_rl.evaluation.bench import bench

    with pytest.raises(ValueError, match="jobs must be a whole number of at least 1"):
        bench([str(_spec_file(tmp_path))], seeds=1, quick=True, out=tmp_path / "b", progress=False, jobs=jobs)
    assert not (tmp_path / "b").exists()


def test_cli_jobs_errors_are_one_sentence(tmp_path):
    spec = _spec_file(tmp_path)
    res = _cli("bench", "--env", str(spec), "--jobs", "0", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert res.returncode == 2 and "--jobs 0: give at least 1" in res.stderr and "Traceback" not in res.stderr
    res = _cli("bench", "--live", "--jobs", "2", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert res.returncode == 2 and "--jobs goes with the simulated bench" in res.stderr
    assert not (tmp_path / "b").exists()


def test_unknown_policy_names_are_refused_before_anything_is_written(tmp_path):
    spec = _spec_file(tmp_path)
    out = tmp_path / "b"
    for given, words in (("nosuch", "unknown policy 'nosuch' in --policies;"),
                         ("Planner", "unknown policy 'Planner' in --policies (did you mean 'planner'?)"),
                         ("planner,nosuch", "unknown policy 'nosuch'"),
                         (" , ", "names no policy"),
                         ("ppo", "unknown policy 'ppo'")):  # no shipped controller for a user's environment
        res = _cli("bench", "--env", str(spec), "--policies", given, "--out", str(out), "--no-progress", cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and words in res.stderr, (given, res.stderr)
        assert "Traceback" not in res.stderr and not out.exists()
    # a shipped controller's name is known, but it applies only to its own environment
    res = _cli("bench", "--env", str(spec), "--env", "Rpi4-Vision", "--policies", "ppo", "--out", str(out),
               "--no-progress", cwd=tmp_path)
    assert res.returncode == 2 and "none of --policies ppo applies to AdaScale/Fixture-Test-v4" in res.stderr
    assert not out.exists()
    ev = _cli("evaluate", "--env", str(spec), "--policy", "Planner", cwd=tmp_path)
    assert ev.returncode == 2 and "unknown policy 'Planner' (did you mean 'planner'?)" in ev.stderr


def test_policy_list_with_spaces_runs_every_name_and_ratios_without_static_largest_read_na(tmp_path):
    spec = _spec_file(tmp_path)
    out = tmp_path / "b"
    res = _cli("bench", "--env", str(spec), "--quick", "--seeds", "1", "--policies", "static-smallest, random",
               "--out", str(out), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted(r["policy"] for r in rows) == ["random", "static-smallest"]
    md = (out / "results.md").read_text()
    assert "n/ax" not in md and "| n/a |" in md


def test_a_rerun_replaces_the_previous_results_and_a_file_as_out_is_one_sentence(tmp_path):
    spec = _spec_file(tmp_path)
    out = tmp_path / "b"
    out.mkdir()
    (out / "timeline-Old-Env.png").write_bytes(b"a previous run's plot")
    (out / "notes.txt").write_text("mine")  # not a bench output: left alone
    res = _cli("bench", "--env", str(spec), "--quick", "--seeds", "1", "--policies", "static-smallest",
               "--out", str(out), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "results.csv", "results.md", "returns.png",
                                                     "timeline-Fixture-Test.png"]
    # a failing run (here: an unreadable trace folder) leaves the folder as it was
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad-traces"
    bad.mkdir()
    (bad / "a.csv").write_text("t_s,bg_cpu_util,mem_avail_mb\n0,0.1,500\n1,x,500\n")
    res = _cli("bench", "--env", str(spec), "--quick", "--seeds", "1", "--policies", "static-smallest",
               "--traces", str(bad), "--out", str(out), "--no-progress", cwd=tmp_path)
    assert res.returncode == 2 and {p.name: p.read_bytes() for p in out.iterdir()} == before
    afile = tmp_path / "results.txt"
    afile.write_text("x")
    res = _cli("bench", "--env", str(spec), "--policies", "static-smallest", "--out", str(afile), "--no-progress",
               cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"--out {afile} is a file; bench writes a folder" in res.stderr and "Errno" not in res.stderr


def test_evaluate_tunes_a_heuristic_as_bench_does_so_the_same_name_gives_the_same_numbers(tmp_path):
    spec = _spec_file(tmp_path)
    out = tmp_path / "b"
    b = _cli("bench", "--env", str(spec), "--seeds", "2", "--policies", "planner", "--out", str(out), "--no-progress",
             cwd=tmp_path)
    assert b.returncode == 0, b.stderr[-2000:]
    row = next(csv.DictReader(open(out / "results.csv")))
    tuned = json.loads(row["params"])
    ev = _cli("evaluate", "--env", str(spec), "--policy", "planner", "--seeds", "2", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-2000:]
    said = "margins tuned on the train split of AdaScale/Fixture-Test-v4, as bench tunes them: "
    assert said in ev.stdout
    assert ast.literal_eval(ev.stdout.split(said, 1)[1].splitlines()[0]) == tuned
    assert float(ev.stdout.split("return", 1)[1].split()[0]) == pytest.approx(float(row["mean_return"]), abs=1e-4)
    plain = _cli("evaluate", "--env", str(spec), "--policy", "planner", "--seeds", "2", "--default-margins",
                 cwd=tmp_path)
    assert plain.returncode == 0 and "default margins (--default-margins): {'horizon'" in plain.stdout


def _recording(tmp_path, name="rec-v1", device="local-x86", test=False):
    """A recorded dataset as `adascale-rl record` writes it (train split only unless `test`)."""
    from _envdata import constant_trace
    from adascale_rl.context.traces import make_meta, save_dataset

    cols = ["t_s", "bg_cpu_util", "mem_avail_mb"]
    meta = make_meta(name=name.rsplit("-v", 1)[0], version=1, device=device, device_mem_total_mb=8000, period_s=1.0,
                     source="recorded", how_made="test", columns=cols)
    splits = {"train": {f"r{i}": {c: constant_trace(90, bg_cpu_util=0.2 * i)[c] for c in cols} for i in range(2)}}
    if test:
        splits["test"] = {"e0": {c: constant_trace(60)[c] for c in cols}}
    return save_dataset(tmp_path / name, meta, splits)


def test_bench_and_evaluate_say_which_traces_they_ran_on_and_on_which_device(tmp_path):
    spec = _spec_file(tmp_path)
    rec = _recording(tmp_path)
    out = tmp_path / "b"
    res = _cli("bench", "--env", str(spec), "--seeds", "1", "--policies", "static-smallest,oracle", "--traces",
               str(rec), "--out", str(out), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    md = (out / "results.md").read_text()
    for text in (md, res.stderr):
        assert f"evaluated on all 2 traces of {rec} (train/r0.csv, train/r1.csv): it has no test split" in text
        assert "recorded on local-x86 and are replayed on rpi4: available memory scaled by total memory " \
               "(8000 -> 3792 MB)" in text
    assert "every test trace" not in md and "on every evaluated trace" in md
    ev = _cli("evaluate", "--env", str(spec), "--policy", "static-smallest", "--seeds", "1", "--traces", str(rec),
              cwd=tmp_path)
    assert ev.returncode == 0 and "it has no test split" in ev.stdout and "replayed on rpi4" in ev.stdout
    assert "split=all" in ev.stdout
    asked = _cli("evaluate", "--env", str(spec), "--policy", "static-smallest", "--seeds", "1", "--traces", str(rec),
                 "--split", "test", cwd=tmp_path)  # asked for by name: not replaced by all of it
    assert asked.returncode == 2 and "--split test: " in asked.stderr and "has no test split" in asked.stderr
    # with a test split, only the test split; on the recording's own device, no replay note
    rec2 = _recording(tmp_path, "rec2-v1", device="rpi4", test=True)
    ev = _cli("evaluate", "--env", str(spec), "--policy", "static-smallest", "--seeds", "1", "--traces", str(rec2),
              cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert f"the test split of {rec2}, 1 trace (test/e0.csv)" in ev.stdout and "replayed" not in ev.stdout
    ev = _cli("evaluate", "--env", str(spec), "--policy", "static-smallest", "--seeds", "1", "--traces", str(rec2),
              "--split", "train", cwd=tmp_path)
    assert ev.returncode == 0 and "episodes=" in ev.stdout and "the train split of" in ev.stdout


def test_local_digits_is_slowed_by_a_busy_run_queue(tmp_path):
    """A constant trace with every core taken and 4 runnable background threads against a quiet one: the static
    largest variant's mean latency at least 1.5x (the measured machine: 2.5x back to back)."""
    from adascale_rl.evaluation.bench import bench

    latency = {}
    for name, bg, runnable in (("busy", 1.0, 4.0), ("quiet", 0.0, 0.0)):
        folder = tmp_path / name
        folder.mkdir()
        rows = "".join(f"{t},{bg},{runnable},20000\n" for t in range(120))
        (folder / "const.csv").write_text("t_s,bg_cpu_util,bg_runnable,mem_avail_mb\n" + rows)
        out = bench(["Local-Digits"], seeds=1, traces=str(folder), policies=["static-largest"], out=tmp_path / f"o-{name}",
                    progress=False)
        latency[name] = next(r["mean_latency_ms"] for r in out if r["policy"] == "static-largest")
    assert latency["busy"] >= 1.5 * latency["quiet"], latency


def test_evaluate_reads_a_shipped_controller_by_its_name_as_bench_does(tmp_path):
    one = tmp_path / "one-trace"  # one test trace of 45 short episodes: the name is what is tested, not the return
    one.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "traces" / "rpi4-sim-v2" / "test" / "gaming-s102.csv", one)
    res = _cli("evaluate", "--env", "Rpi4-Vision", "--policy", "ppo", "--seeds", "1", "--traces", str(one),
               "--env-kwargs", "max_episode_steps=20", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "policy=ppo" in res.stdout and "ci95_return          n/a (one seed)" in res.stdout


def test_bench_on_traces_that_do_not_exist_says_so(tmp_path):
    res = _cli("bench", "--traces", str(tmp_path / "my-recording"), "--policies", "greedy", "--out",
               str(tmp_path / "b"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 2 and "my-recording: no such file or folder" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "b").exists()


def test_bench_workers_stop_when_bench_is_killed_outright(tmp_path):
    """SIGKILL gives bench no chance to stop its workers: each notices its parent is gone and exits mid-job (an
    oracle seed of the default environment is tens of seconds of work; the workers are gone well before)."""
    import os
    import signal
    import time

    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "adascale_rl.cli", "bench", "--policies", "oracle", "--jobs", "2",
                             "--out", str(tmp_path / "b"), "--no-progress"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = []
    try:
        parent = psutil.Process(proc.pid)

        def workers():
            return [c for c in parent.children(recursive=True)
                    if "spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(found) < 2 and proc.poll() is None:
            try:
                found = workers()
            except psutil.Error:
                pass
            time.sleep(0.2)
        assert len(found) == 2, "bench did not start its two workers"
        time.sleep(2.0)  # inside their first jobs
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(found, timeout=20)
        assert not alive, [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in found:  # whatever the assertion said, leave no worker behind
            try:
                p.kill()
            except psutil.Error:
                pass
