"""PPO training machinery: run folder, determinism, resume, the loaded controller, CLI errors.

Everything runs on the small fixture environment of ``tests/conftest.py`` with a
tiny recipe (2 envs x 64 steps per rollout), so the whole file takes seconds.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import adascale_rl  # noqa: F401  (registers the ids)
from adascale_rl import cli
from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.registration import registered_specs
from adascale_rl.environment.spec import find_spec
from adascale_rl.policies import ppo_run
from adascale_rl.policies.base import Policy
from adascale_rl.policies.callbacks import apply_keep_bias, keep_logit
from adascale_rl.policies.ppo import load_policy, make_env, parse_env_kwargs, train
from adascale_rl.policies.ppo_hyperparams import HyperparamsError, default_file, load_recipe, parse, safe_eval
from _envdata import constant_trace, write_env
from _procs import interrupt_when

TINY = {"policy": "MlpPolicy", "n_envs": 2, "n_timesteps": 256, "normalize": {"norm_obs": True, "norm_reward": True},
        "n_steps": 64, "batch_size": 64, "n_epochs": 2, "gamma": 0.97, "learning_rate": "lin_3e-4",
        "policy_kwargs": {"net_arch": [16, 16]},
        "callback": [{"adascale_rl.policies.callbacks.KeepBias": {"keep_prob": 0.9}},
                     "adascale_rl.policies.callbacks.RolloutInfoLogger"]}
RUN_FILES = ("model.zip", "vecnormalize.pkl", "best_model.zip", "best_vecnormalize.pkl", "config.yml",
             "evaluations.csv")


def _spec_yaml(tmp: Path, **kw) -> Path:
    """A fixture environment written as a spec YAML (what ``--env PATH`` takes)."""
    (tmp / "env").mkdir(exist_ok=True)
    spec = write_env(tmp / "env", **kw)
    doc = {k: getattr(spec, k) for k in ("id", "description", "device", "catalog", "dataset", "reward", "period_s",
                                         "max_episode_steps")}
    path = tmp / "Fixture-Test.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def env_yaml(tmp_path) -> Path:
    return _spec_yaml(tmp_path)


@pytest.fixture
def tiny_hp(tmp_path) -> Path:
    f = tmp_path / "tiny.yml"
    f.write_text(yaml.safe_dump({"default": TINY}))
    return f


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_policy(path).model.policy.state_dict()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "adascale-rl"  # the installed command, as a user runs it
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "adascale_rl.cli"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ CLI

def test_cli_train_smoke_writes_a_complete_run_folder(tmp_path, env_yaml, tiny_hp):
    out = tmp_path / "run"
    res = _cli("train", "--env", str(env_yaml), "-n", "512", "--out", str(out), "--hyperparams", str(tiny_hp),
               "--eval-freq", "256", "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for f in RUN_FILES:
        assert (out / f).is_file(), f
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    cfg = yaml.safe_load((out / "config.yml").read_text())
    assert cfg["env"] == "AdaScale/Fixture-Test-v4" and cfg["seed"] == 0 and cfg["timesteps"] == 512
    assert cfg["hyperparams"]["n_steps"] == 64 and cfg["hyperparams_key"] == "default"
    assert cfg["state"]["num_timesteps"] == 512 and cfg["state"]["best_val_return"] is not None
    assert {"stable_baselines3", "sb3_contrib", "torch", "gymnasium"} <= set(cfg["versions"])
    assert "train" in cfg["sessions"][0]["command"] and cfg["sessions"][0]["wall_time_s"] > 0
    rows = (out / "evaluations.csv").read_text().splitlines()
    assert rows[0].startswith("timesteps,mean_return") and [r.split(",")[0] for r in rows[1:]] == ["0", "256", "512"]
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    blob = b"".join(e.read_bytes() for e in events)
    for tag in (b"env/reward_miss", b"env/effective_accuracy", b"env/switched", b"eval/mean_return",
                b"rollout/ep_rew_mean"):
        assert tag in blob, tag


PRIOR = {"policy": "adascale_rl.policies.prior.PriorMaskablePolicy", "n_envs": 2, "n_steps": 64, "batch_size": 64,
         "n_epochs": 1, "normalize": {"norm_obs": False, "norm_reward": True},
         "policy_kwargs": {"net_arch": [8], "features_extractor_class": "adascale_rl.policies.prior.PlannerPrior",
                           "features_extractor_kwargs": {"temperature": 0.003}},
         "callback": [{"adascale_rl.policies.callbacks.CriticWarmup": {"steps": 128}}]}


def test_cli_train_says_what_a_prior_run_will_show_with_rounded_numbers(tmp_path, env_yaml, tiny_hp):
    hp = tmp_path / "prior.yml"
    hp.write_text(yaml.safe_dump({"default": PRIOR}))
    res = _cli("train", "--env", str(env_yaml), "-n", "256", "--eval-freq", "128", "--out", str(tmp_path / "run"),
               "--hyperparams", str(hp), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert re.search(r"^planner prior: horizon \d+ and sigma 0\.\d, tuned on the train split$", out, re.M), out
    assert ("what to expect: the policy starts as the planner prior (temperature 0.003) and PPO learns a residual "
            "on it; the actor is frozen for the first 128 steps while the critic warms up.") in out
    assert "a flat validation return is expected, not a fault" in out
    assert re.search(r"^validation return at step 0 \(the untrained policy, i\.e\. the prior\): -?\d+\.\d\d over "
                     r"\d+ validation windows$", out, re.M), out
    assert re.search(r"best validation return -?\d+\.\d\d at step \d+", out.splitlines()[-1])
    # without a prior there is nothing to expect of it
    plain = _cli("train", "--env", str(env_yaml), "-n", "128", "--out", str(tmp_path / "plain"), "--hyperparams",
                 str(tiny_hp), "--no-progress", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "what to expect" not in plain.stdout and "validation return at step 0 (the untrained policy): " in plain.stdout


def test_cli_train_interrupted_says_so_once(tmp_path, env_yaml, tiny_hp):
    import signal

    out = tmp_path / "run"
    script = Path(sys.executable).parent / "adascale-rl"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "adascale_rl.cli"]
    # SIGINT at its default in the child: a test run started in the background inherits it ignored, and
    # Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([*cmd, "train", "--env", str(env_yaml), "-n", "1000000", "--out", str(out),
                             "--hyperparams", str(tiny_hp), "--no-progress"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # step 0's checkpoint: training runs
    err = interrupt_when(proc, lambda: (out / "model.zip").exists(), settle_s=1.0, exit_s=120)
    assert proc.returncode == 130
    said = [line for line in err.splitlines() if "interrupted" in line]
    assert len(said) == 1 and said[0].startswith("interrupted at ") and f"--resume {out}" in said[0], err


def test_progress_bar_shows_time_left_only_once_a_validation_interval_has_passed():
    from types import SimpleNamespace

    bar = ppo_run.TrainingProgress(total=1000, eval_freq=256)
    bar.model = SimpleNamespace(num_timesteps=0)
    bar._on_training_start()
    try:
        seen = []
        for _ in range(20):
            bar.model.num_timesteps += 32
            bar._on_step()
            seen.append((bar.model.num_timesteps, "left" in bar.bar.bar_format, bar.bar.n))
        assert all(not eta for steps, eta, _ in seen if steps <= 256)
        assert all(eta for steps, eta, _ in seen if steps > 256)
        assert all(n == steps for steps, _, n in seen) and bar.bar.smoothing == 0  # the average over the session
    finally:
        bar.close()


def test_cli_bad_env_exits_2_with_one_sentence(tmp_path):
    res = _cli("train", "--env", "AdaScale/NoSuch-Thing-v4", "-n", "64", "--out", str(tmp_path / "run"),
               "--no-progress", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("adascale-rl train: error: unknown environment 'AdaScale/NoSuch-Thing-v4'")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, words", [
    (["--env-kwargs", "nosuch=1"], "unknown environment argument(s) nosuch"),
    (["--env-kwargs", "reward"], "KEY=VALUE"),
    (["--env-kwargs", "reward=nosuch"], "nosuch"),
    (["--eval-freq", "0"], "--eval-freq"),
    (["--hyperparams", "{bad}"], "unknown hyperparameter(s) learning_rte"),
    (["--hyperparams", "{missing}"], "cannot be read"),
])
def test_cli_user_mistakes_exit_2_naming_the_fault(tmp_path, env_yaml, capsys, extra, words):
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"default": {**TINY, "learning_rte": 0.1}}))
    extra = [a.format(bad=bad, missing=tmp_path / "missing.yml") for a in extra]
    code = cli.main(["train", "--env", str(env_yaml), "-n", "64", "--out", str(tmp_path / "run"), "--no-progress",
                     *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def _recording(tmp: Path, train_traces: int, rows: int, name: str = "rec-v1") -> Path:
    """A recorded dataset as `adascale-rl record` writes it: `train_traces` train files and one test file."""
    from adascale_rl.context.traces import make_meta, save_dataset

    cols = ["t_s", "bg_cpu_util", "mem_avail_mb"]
    meta = make_meta(name=name.rsplit("-v", 1)[0], version=1, device="rpi4", device_mem_total_mb=3792,
                     period_s=1.0, source="recorded", how_made="test", columns=cols)
    trace = {c: constant_trace(rows)[c] for c in cols}
    return save_dataset(tmp / name, meta, {"train": {f"r{i}": trace for i in range(train_traces)},
                                           "test": {"e0": trace}})


def test_cli_train_on_ones_own_recording_says_which_files_train_and_validate(tmp_path, env_yaml, tiny_hp):
    rec = _recording(tmp_path, train_traces=1, rows=120)
    out = tmp_path / "run"
    res = _cli("train", "--env", str(env_yaml), "--traces", str(rec), "-n", "128", "--out", str(out),
               "--hyperparams", str(tiny_hp), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "  train: 1 trace, the first four fifths of each: train/r0.csv (96 intervals)" in res.stdout
    assert "  validation: the last fifth of each train trace: train/r0.csv (24 intervals)" in res.stdout
    assert "  not used here: the test split (test/e0.csv), for bench and evaluate" in res.stdout
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "holds only 24 intervals" in warnings[0] and "less than one 50-interval" in warnings[0]
    cfg = yaml.safe_load((out / "config.yml").read_text())
    assert cfg["env_kwargs"]["dataset"] == str(rec.resolve())  # absolute: --resume works from any folder
    # four train traces: every 4th is held out whole, and a long enough one is no warning
    rec4 = _recording(tmp_path, train_traces=4, rows=120, name="rec4-v1")
    res = _cli("train", "--env", str(env_yaml), "--traces", str(rec4), "-n", "128", "--out", str(tmp_path / "run4"),
               "--hyperparams", str(tiny_hp), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "  train: 3 traces: train/r0.csv, train/r1.csv, train/r2.csv" in res.stdout
    assert "  validation: every 4th train trace: train/r3.csv (120 intervals)" in res.stdout
    assert "warning" not in res.stderr


def test_cli_train_traces_mistakes_are_one_sentence(tmp_path, env_yaml, tiny_hp):
    rec = _recording(tmp_path, train_traces=1, rows=60)
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.csv").write_text("t_s,bg_cpu_util,mem_avail_mb\n0,0.1,500\n1,0.1,500\n")
    for extra, words in ((["--traces", str(tmp_path / "nope")], "no such file or folder"),
                         (["--traces", str(rec), "--env-kwargs", f"dataset={rec}"], "give the data once"),
                         (["--traces", str(loose)], "is a plain folder of CSV files"),
                         (["--traces", str(rec), "--resume", str(tmp_path / "run")], "does not apply to --resume")):
        res = _cli("train", "--env", str(env_yaml), "-n", "64", "--out", str(tmp_path / "run"), "--no-progress",
                   *extra, cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and words in res.stderr, (extra, res.stderr)
        assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_one_sentence(tmp_path, env_yaml):
    afile = tmp_path / "run.txt"
    afile.write_text("mine")
    res = _cli("train", "--env", str(env_yaml), "-n", "64", "--out", str(afile), "--no-progress", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"--out {afile} is a file; train writes a run folder" in res.stderr and "Errno" not in res.stderr
    assert afile.read_text() == "mine"


def test_existing_run_folder_is_not_overwritten(tmp_path, env_yaml, tiny_hp, capsys):
    out = tmp_path / "run"
    train(str(env_yaml), timesteps=128, out=out, hyperparams=tiny_hp, progress=False)
    before = (out / "model.zip").read_bytes()
    code = cli.main(["train", "--env", str(env_yaml), "-n", "128", "--out", str(out), "--hyperparams", str(tiny_hp),
                     "--no-progress"])
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert (out / "model.zip").read_bytes() == before


# ------------------------------------------------------------------ determinism and resume

def test_same_seed_gives_identical_parameters_and_another_seed_does_not(tmp_path, env_yaml, tiny_hp):
    runs = [train(str(env_yaml), timesteps=256, seed=s, out=tmp_path / f"r{i}", hyperparams=tiny_hp, progress=False)
            for i, s in enumerate((7, 7, 8))]
    a, b, c = (_params(r / "model.zip") for r in runs)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (runs[0] / "evaluations.csv").read_text() == (runs[1] / "evaluations.csv").read_text()


def test_resume_continues_from_where_it_stopped(tmp_path, env_yaml, tiny_hp, capsys):
    out = tmp_path / "run"
    train(str(env_yaml), timesteps=256, out=out, hyperparams=tiny_hp, eval_freq=128, progress=False)
    first = load_policy(out / "model.zip").model
    assert first.num_timesteps == 256
    before = _params(out / "model.zip")
    capsys.readouterr()
    assert cli.main(["train", "--env", str(env_yaml), "--resume", str(out), "-n", "512", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {out} from model.zip at 256 of 512 steps" in printed
    after = load_policy(out / "model.zip").model
    assert after.num_timesteps == 512
    assert not all(torch.equal(before[k], after.policy.state_dict()[k]) for k in before)
    cfg = yaml.safe_load((out / "config.yml").read_text())
    assert cfg["timesteps"] == 512 and cfg["state"]["num_timesteps"] == 512
    assert [(s["from_timesteps"], s["reached_timesteps"]) for s in cfg["sessions"]] == [(0, 256), (256, 512)]
    steps = [int(r.split(",")[0]) for r in (out / "evaluations.csv").read_text().splitlines()[1:]]
    assert steps == [0, 128, 256, 384, 512]  # the untrained policy once, not again on resume
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert {e.parent.name for e in events} == {"ppo_1"}  # the same TensorBoard run continues
    # a finished run is left alone
    assert cli.main(["train", "--env", str(env_yaml), "--resume", str(out), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_budget_is_rounded_up_to_whole_rollouts(tmp_path, env_yaml, tiny_hp, capsys):
    out = train(str(env_yaml), timesteps=100, out=tmp_path / "run", hyperparams=tiny_hp, progress=False)
    cfg = yaml.safe_load((out / "config.yml").read_text())
    assert cfg["timesteps"] == 128 and cfg["state"]["num_timesteps"] == 128  # 2 envs x 64 steps
    assert "100 steps rounded up to 128: PPO trains whole rollouts of 128 steps" in capsys.readouterr().out


def test_resume_of_another_environment_is_refused(tmp_path, env_yaml, tiny_hp):
    out = tmp_path / "run"
    train(str(env_yaml), timesteps=128, out=out, hyperparams=tiny_hp, progress=False)
    with pytest.raises(ValueError, match="is a run on AdaScale/Fixture-Test-v4"):
        train("AdaScale/Other-Thing-v4", resume=out)


# ------------------------------------------------------------------ the loaded controller

def test_loaded_policy_acts_only_with_unmasked_actions(tmp_path, tiny_hp):
    # 70 MB free: 'big' (60 MB) fits alone but never next to another variant, so switching to it is masked
    tight = {f"t{i}": constant_trace(120, request_rate_hz=8, deadline_ms=150, mem_avail_mb=70) for i in range(4)}
    env_yaml = _spec_yaml(tmp_path, train=tight, test=dict(list(tight.items())[:1]))
    out = train(str(env_yaml), timesteps=128, out=tmp_path / "run", hyperparams=tiny_hp, progress=False)
    policy = load_policy(out)
    assert isinstance(policy, Policy) and policy.kind == "learned" and policy.name == "run"
    assert policy.path.name == "best_model.zip"
    # push the policy hard towards switching to 'big' (action 1), which the tight memory masks
    with torch.no_grad():
        policy.model.policy.action_net.bias[1] += 50.0
    env = make_env(load_policy_spec(out), "test")
    obs, info = env.reset(seed=0, options={"trace": 0, "start": 0, "variant": "tiny"})
    policy.reset(env)
    masked_seen = 0
    for _ in range(40):
        a = policy.act(obs, info)
        assert info["action_mask"][a] == 1, (a, info["action_mask"])
        masked_seen += int(info["action_mask"][1] == 0)
        obs, _, term, trunc, info = env.step(a)
        if term or trunc:
            break
    assert masked_seen > 0  # the test exercised the mask


def test_loaded_policy_matches_maskable_ppo_predict(tmp_path, env_yaml, tiny_hp):
    out = train(str(env_yaml), timesteps=128, out=tmp_path / "run", hyperparams=tiny_hp, progress=False)
    policy = load_policy(out / "model.zip", name="mine")
    assert policy.name == "mine" and policy.obs_norm is not None and not policy.obs_norm.training
    env = make_env(load_policy_spec(out), "val")
    obs, info = env.reset(seed=1)
    policy.reset(env)
    for _ in range(30):
        a = policy.act(obs, info)
        ref, _ = policy.model.predict(policy.obs_norm.normalize_obs(obs), deterministic=True,
                                      action_masks=info["action_mask"].astype(bool))
        assert a == int(ref)
        obs, _, _, trunc, info = env.step(a)
        if trunc:
            obs, info = env.reset()


def test_loaded_policy_refuses_an_environment_of_another_shape(tmp_path, env_yaml, tiny_hp):
    out = train(str(env_yaml), timesteps=128, out=tmp_path / "run", hyperparams=tiny_hp, progress=False)
    (tmp_path / "other").mkdir()
    other = AdaScaleEnv(write_env(tmp_path / "other", variants=[
        {"id": "only", "accuracy": 0.5, "latency_ms": 10.0, "peak_mem_mb": 10.0}]))
    with pytest.raises(ValueError, match="was trained for observations"):
        load_policy(out).reset(other)


def test_load_policy_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither best_model.zip nor model.zip"):
        load_policy(tmp_path)
    (tmp_path / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="model.zip is not a loadable PPO model"):
        load_policy(tmp_path)


def load_policy_spec(run: Path):
    from adascale_rl.environment.spec import find_spec

    return find_spec(yaml.safe_load((run / "config.yml").read_text())["env_spec"])


# ------------------------------------------------------------------ recipe, keep bias, atomic writes

def test_shipped_recipe_is_one_default_for_every_environment():
    doc = yaml.safe_load(default_file().read_text())
    assert list(doc) == ["default"]
    for s in registered_specs():
        r = load_recipe(s.id, s.name)
        assert r.key == "default" and r.n_envs >= 1 and r.normalize is not None
        assert r.normalize["gamma"] == r.model_kwargs["gamma"]
        assert r.rollout_steps == r.n_envs * r.model_kwargs["n_steps"]


def test_recipe_lookup_prefers_id_then_name_then_default(tmp_path):
    f = tmp_path / "hp.yml"
    f.write_text(yaml.safe_dump({"default": {"n_steps": 8}, "Fixture-Test": {"n_steps": 16},
                                 "AdaScale/Fixture-Test-v4": {"n_steps": 32}}))
    assert load_recipe("AdaScale/Fixture-Test-v4", "Fixture-Test", f).model_kwargs["n_steps"] == 32
    assert load_recipe("AdaScale/Fixture-Other-v4", "Fixture-Test", f).model_kwargs["n_steps"] == 16
    assert load_recipe("AdaScale/X-Y-v4", "X-Y", f).key == "default"


@pytest.mark.parametrize("entry, words", [
    ({"frame_stack": 4}, "frame_stack is an rl-zoo3 option"),
    ({"seed": 3}, "set by the trainer"),
    ({"n_steps": 0}, "n_steps must be a positive integer"),
    ({"learning_rate": "cos_1e-3"}, "learning_rate must be a number or lin_"),
    ({"policy_kwargs": "dict(net_arch=__import__('os'))"}, "policy_kwargs"),
    ({"normalize": 3}, "normalize must be"),
    ({"callback": [{"a.B": 1}]}, "needs a mapping"),
])
def test_bad_recipe_entries_name_the_file_entry_and_key(entry, words):
    with pytest.raises(HyperparamsError, match=r"hp\.yml \[default\]") as exc:
        parse(entry, "hp.yml", "default")
    assert words in str(exc.value)


def test_rl_zoo_python_strings_are_read_without_eval():
    got = safe_eval("dict(net_arch=dict(pi=[64, 64], vf=[32]), activation_fn=nn.ReLU, ortho_init=False)", "f", "k")
    assert got == {"net_arch": {"pi": [64, 64], "vf": [32]}, "activation_fn": torch.nn.ReLU, "ortho_init": False}
    r = parse({"normalize": "dict(norm_obs=True, norm_reward=False)", "gamma": 0.9}, "f", "k")
    assert r.normalize == {"norm_obs": True, "norm_reward": False, "gamma": 0.9}


def test_env_kwargs_are_parsed_as_yaml_scalars():
    assert parse_env_kwargs(["reward=energy-saver", "latency_sigma=0.1", "random_start_variant=false"]) == {
        "reward": "energy-saver", "latency_sigma": 0.1, "random_start_variant": False}
    # YAML 1.1 leaves exponent forms and inf as strings; they are numbers here
    assert parse_env_kwargs(["spike_spell_s=1e1", "latency_sigma=inf"]) == {"spike_spell_s": 10.0,
                                                                             "latency_sigma": float("inf")}


def test_keep_bias_makes_the_initial_policy_mostly_keep(fixture_spec):
    from sb3_contrib import MaskablePPO

    env = AdaScaleEnv(fixture_spec)
    model = MaskablePPO("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    offset = apply_keep_bias(model.policy, 0.9)
    assert offset == pytest.approx(keep_logit(0.9, env.action_space.n)) == pytest.approx(np.log(0.9 * 4 / 0.1))
    obs, info = env.reset(seed=0, options={"variant": "tiny"})
    allowed = info["action_mask"].astype(bool)
    dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0], action_masks=allowed)
    probs = dist.distribution.probs.detach().numpy()[0]
    assert probs[0] > 0.85 and probs[~allowed].sum() == 0
    with pytest.raises(ValueError, match="keep_prob"):
        keep_logit(1.0, 5)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    f = tmp_path / "model.zip"
    f.write_bytes(b"old")

    def boom(p: Path) -> None:
        p.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ppo_run.atomic_write(f, boom)
    assert f.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.zip"]
    ppo_run.atomic_write(f, lambda p: p.write_bytes(b"new"))
    assert f.read_bytes() == b"new" and os.listdir(tmp_path) == ["model.zip"]


def test_validation_windows_are_spread_over_the_split():
    eps = [(t, s) for t in range(3) for s in (0, 50, 100)]
    assert ppo_run.pick_episodes(eps, None) == eps
    assert ppo_run.pick_episodes(eps, 3) == [(0, 0), (1, 50), (2, 100)]
    assert len(ppo_run.pick_episodes(eps, 100)) == 9


def test_validation_plays_each_window_from_start_variants_spread_over_the_catalog():
    env = make_env(find_spec("AdaScale/Rpi4-Vision-v4"), "val").unwrapped
    windows = ppo_run.pick_episodes(env.evaluation_episodes(), 5)
    assert ppo_run.validation_episodes(env, windows, 1) == windows  # the usual start: the episodes as before
    # how many starts fit a recipe's budget: at least the usual one, at most one per variant
    assert [ppo_run.start_variants_for(b, 15, 19) for b in (None, 10, 80, 1000)] == [1, 1, 5, 19]
    every = ppo_run.validation_episodes(env, windows[:1], len(env.catalog))
    assert sorted(e[2] for e in every[1:]) == sorted(set(range(len(env.catalog))) - {
        max(range(len(env.catalog)), key=lambda i: env.catalog.variants[i].latency_ms)})
    eps = ppo_run.validation_episodes(env, windows, 4)
    assert len(eps) == 4 * len(windows) and all(len(e) == 3 for e in eps)
    lat = [v.latency_ms for v in env.catalog.variants]
    for j, (trace, start) in enumerate(windows):
        mine = eps[4 * j:4 * j + 4]
        assert {e[:2] for e in mine} == {(trace, start)}
        usual, *spread = [e[2] for e in mine]
        assert usual == env.default_variant(env.exo[trace][start].mem_avail_mb)
        assert lat[spread[0]] == min(lat) and max(lat[v] for v in spread) < max(lat)
        assert [lat[v] for v in spread] == sorted(lat[v] for v in spread) and len(set(spread)) == 3
    # a window played from a start variant begins there (the options reach reset)
    _, info = env.reset(seed=0, options={"trace": eps[1][0], "start": eps[1][1], "variant": eps[1][2]})
    assert info["variant"] == env.catalog.variants[eps[1][2]].id
    for bad in (0, len(env.catalog) + 1):
        with pytest.raises(ValueError, match="start_variants must be 1 to the catalog's"):
            ppo_run.validation_episodes(env, windows, bad)


def test_a_recipe_chooses_its_checkpoints_from_several_start_variants(tmp_path, env_yaml):
    hp = tmp_path / "starts.yml"
    windows = ppo_run.pick_episodes(make_env(find_spec(str(env_yaml)), "val").unwrapped.evaluation_episodes(), 20)
    hp.write_text(yaml.safe_dump({"default": {**TINY, "val_episodes": 3 * len(windows) + 1}}))
    run = train(str(env_yaml), timesteps=128, seed=0, out=tmp_path / "run", hyperparams=hp, eval_freq=128,
                progress=False)
    cfg = yaml.safe_load((run / "config.yml").read_text())
    assert cfg["eval"]["start_variants"] == 3
    with open(run / "evaluations.csv") as f:
        assert {int(float(r["episodes"])) for r in csv.DictReader(f)} == {3 * len(windows)}
    for bad in (0, 1.5, "four", True):
        hp.write_text(yaml.safe_dump({"default": {**TINY, "val_episodes": bad}}))
        with pytest.raises(HyperparamsError, match="val_episodes must be a positive integer"):
            train(str(env_yaml), timesteps=128, seed=0, out=tmp_path / f"bad-{bad}", hyperparams=hp, progress=False)
        assert not (tmp_path / f"bad-{bad}").exists()


def test_bench_notes_a_controller_trained_under_other_env_kwargs(tmp_path, env_yaml, tiny_hp):
    from adascale_rl.evaluation.bench import bench

    run = train(str(env_yaml), timesteps=128, out=tmp_path / "run", hyperparams=tiny_hp, progress=False,
                env_kwargs={"reward": "energy-saver"})
    common = dict(seeds=1, quick=True, policies=["static-smallest", str(run)], progress=False)
    bench([str(env_yaml)], out=tmp_path / "b1", **common)
    note = "run was trained with environment arguments {'reward': 'energy-saver'} and is evaluated here with none"
    assert note in (tmp_path / "b1" / "results.md").read_text()
    bench([str(env_yaml)], out=tmp_path / "b2", env_kwargs={"reward": "energy-saver"}, **common)
    md = (tmp_path / "b2" / "results.md").read_text()
    assert "was trained with" not in md and "environment arguments: {'reward': 'energy-saver'}" in md


def test_a_run_within_the_critics_warm_up_is_told_its_policy_stays_the_prior():
    from types import SimpleNamespace

    from adascale_rl.policies.ppo import expectation

    class Prior:  # what expectation() asks of a features extractor: that it carries a tuned prior
        TUNED = ("horizon", "sigma")

    recipe = SimpleNamespace(callbacks=[("adascale_rl.policies.callbacks.CriticWarmup", {"steps": 20480})])
    kwargs = {"policy_kwargs": {"features_extractor_class": Prior, "features_extractor_kwargs": {"temperature": 0.003}}}
    short = expectation(recipe, kwargs, 4096)
    assert "This run's 4096 steps end within the warm-up: its policy stays the prior" in short
    assert "end within the warm-up" not in expectation(recipe, kwargs, 100_000)
    assert "end within the warm-up" not in expectation(recipe, kwargs)
