"""PPO controllers: train (MaskablePPO on the train split), resume, load as a :class:`Policy`.

``train`` builds ``n_envs`` copies of the environment's train split -- with the
recipe's ``vectorized: true`` (the shipped recipes) one native vector environment
(:mod:`adascale_rl.environment.vector`, behind :mod:`adascale_rl.policies.sb3_vec`),
otherwise single environments in a ``DummyVecEnv``; both give the same rollouts --
under ``VecNormalize`` (observations and rewards), a ``MaskablePPO`` that reads the
masks through the environments' ``action_masks()`` (variants whose switch peak does
not fit memory are never sampled), and runs the recipe of
``agents/hyperparams/ppo.yml`` (one recipe for every environment). It validates on the
``val`` split (every 4th train trace, held out; with ``vectorized``, every window at
once in a vector environment, the same numbers), keeps the best checkpoint, and writes
everything into one run folder (:mod:`adascale_rl.policies.ppo_run`). ``load_policy`` turns a run folder or a
shipped ``agents/<env>/ppo/`` folder into a deterministic, masked controller.
"""

from __future__ import annotations

import inspect
import math
import os
import pickle
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import yaml

from adascale_rl import paths
from adascale_rl._files import command_line
from adascale_rl.environment.env import AdaScaleEnv, window_steps
from adascale_rl.environment.registration import ENTRY_POINT
from adascale_rl.environment.spec import EnvSpec, find_spec
from adascale_rl.policies import ppo_run
from adascale_rl.policies.callbacks import RolloutInfoLogger
from adascale_rl.policies.ppo_hyperparams import Recipe, build_callbacks, load_recipe, parse
from adascale_rl.policies.ppo_run import RunFolder, ValidationCallback, pick_episodes, validation_episodes
from adascale_rl.policies.rollout import torch_threads

ALGO = "MaskablePPO"
#: validation windows per evaluation (evenly spread over the val split)
EVAL_EPISODES = 20
#: validations per run when --eval-freq is not given
EVALS_PER_RUN = 10
#: environment arguments the trainer sets itself
_TRAINER_ENV_KWARGS = ("spec", "split", "render_mode")


# ---------------------------------------------------------------- environments

def make_env(spec: EnvSpec, split: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``gymnasium.make`` of the spec (the same wrappers as a registered id) on ``split``."""
    kw = dict(env_kwargs or {})
    # gymnasium.make takes max_episode_steps for its TimeLimit; the env needs it too (its window)
    steps = window_steps(kw.pop("max_episode_steps", None), spec.max_episode_steps)
    gspec = gym.envs.registration.EnvSpec(id=spec.id, entry_point=ENTRY_POINT, max_episode_steps=steps,
                                          kwargs={"spec": spec, "max_episode_steps": steps})
    return gym.make(gspec, split=split, **kw)


def check_env_kwargs(env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Reject keys AdaScaleEnv does not take (one sentence naming them), before any work starts."""
    env_kwargs = dict(env_kwargs or {})
    allowed = set(inspect.signature(AdaScaleEnv.__init__).parameters) - {"self", *_TRAINER_ENV_KWARGS}
    bad = sorted(set(env_kwargs) - allowed)
    if bad:
        raise ValueError(f"unknown environment argument(s) {', '.join(bad)}; "
                         f"known: {', '.join(sorted(allowed))} (the split is chosen by the command)")
    return env_kwargs


def parse_env_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``["reward=energy-saver", "latency_sigma=0.1"]`` -> a dict (values read as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env-kwargs takes KEY=VALUE pairs, not {item!r}")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, str):  # YAML 1.1 reads 1e1 and inf as strings; take them as numbers
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key] = parsed
    return out


def _make_vec_env(spec: EnvSpec, recipe: Recipe, env_kwargs: dict, seed: int):
    """The training environments: with the recipe's ``vectorized``, one native vector environment of
    ``n_envs`` (:class:`~adascale_rl.policies.sb3_vec.SB3VectorEnv` under ``VecMonitor``), else
    ``n_envs`` single environments in a ``DummyVecEnv`` (each under ``Monitor``). Environment i is
    seeded ``seed + i`` at the first reset either way."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    kw = {**recipe.env_kwargs, **env_kwargs}
    if recipe.vectorized:
        from adascale_rl.environment.vector import AdaScaleVectorEnv
        from adascale_rl.policies.sb3_vec import SB3VectorEnv

        venv = VecMonitor(SB3VectorEnv(AdaScaleVectorEnv(recipe.n_envs, spec, split="train", autoreset_mode="SameStep",
                                                         **kw)))
    else:
        venv = DummyVecEnv([lambda: Monitor(make_env(spec, "train", kw)) for _ in range(recipe.n_envs)])
    venv.seed(seed)
    return venv


def _make_val_env(spec: EnvSpec, recipe: Recipe, env_kwargs: dict, n_windows: int):
    """Where validation plays its windows: a vector environment with one sub-environment per window (the
    recipe's ``vectorized``), else None (the single validation environment, one window after another)."""
    if not recipe.vectorized:
        return None
    from adascale_rl.environment.vector import AdaScaleVectorEnv

    return AdaScaleVectorEnv(max(n_windows, 1), spec, split="val", **env_kwargs)


# ---------------------------------------------------------------- training

def portable_path(path: str | os.PathLike | None) -> str | None:
    """A path as a run folder records it: relative to the shipped data root when it lies under it
    (``envs/Rpi4-Vision.yaml``), so a run folder that ships holds no path of the machine that
    trained it; a user's own file elsewhere stays as it is."""
    if path is None:
        return None
    p = Path(path).resolve()
    try:
        return p.relative_to(paths.data_root().resolve()).as_posix()
    except ValueError:
        return str(p)


def resolve_portable(path: str) -> Path:
    """The file :func:`portable_path` recorded: relative paths are under the data root."""
    p = Path(path)
    return p if p.is_absolute() else paths.data_root() / p


def default_out(spec: EnvSpec, seed: int) -> Path:
    return Path("runs") / spec.name / f"ppo-seed{seed}"


def _whole_rollouts(steps: int, recipe: Recipe) -> int:
    """PPO trains whole rollouts (n_envs x n_steps); round the budget up so the count is honest."""
    if steps < 1:
        raise ValueError(f"--timesteps must be positive, not {steps}")
    return math.ceil(steps / recipe.rollout_steps) * recipe.rollout_steps


def _eval_freq(eval_freq: int | None, total: int, rollout: int) -> int:
    if eval_freq is not None:
        if eval_freq < 1:
            raise ValueError(f"--eval-freq must be a positive number of steps, not {eval_freq}")
        return int(eval_freq)
    return max(rollout, math.ceil(total / EVALS_PER_RUN / rollout) * rollout)


def train(env_id: str | EnvSpec, timesteps: int | None = None, seed: int = 0, out: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, hyperparams: str | os.PathLike | None = None,
          eval_freq: int | None = None, env_kwargs: Mapping[str, Any] | None = None,
          progress: bool = True) -> Path:
    """Train (or with ``resume``, continue) a MaskablePPO controller; returns the run folder.

    ``env_id`` is a registered id, a spec name, a spec YAML path or an
    :class:`EnvSpec`. ``timesteps``
    defaults to the recipe's ``n_timesteps``; with ``resume`` it is the new total
    (default: the total in the run's config). Everything else about a resumed
    run (environment, kwargs, recipe, seed) comes from its ``config.yml``.
    """
    if resume is not None:
        return _resume(Path(resume), env_id, timesteps, progress)
    spec = env_id if isinstance(env_id, EnvSpec) else find_spec(str(env_id))
    env_kwargs = check_env_kwargs(env_kwargs)
    if isinstance(env_kwargs.get("dataset"), (str, os.PathLike)) and Path(env_kwargs["dataset"]).exists():
        env_kwargs["dataset"] = str(Path(env_kwargs["dataset"]).resolve())  # config.yml: usable from any folder
    recipe = load_recipe(spec.id, spec.name, hyperparams)
    check_env_kwargs(recipe.env_kwargs)
    asked = int(timesteps) if timesteps is not None else recipe.n_timesteps
    total = _whole_rollouts(asked, recipe)
    freq = _eval_freq(eval_freq, total, recipe.rollout_steps)
    run = RunFolder(out if out is not None else default_out(spec, seed))
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--out {run.path} is a file; train writes a run folder (model, config, checkpoints): "
                         f"name a folder")
    if (run / ppo_run.MODEL).exists():
        raise FileExistsError(f"{run.path} already holds a run; continue it with --resume {run.path} "
                              f"or choose another --out")
    # the data and the arguments must work before anything is written
    probe = make_env(spec, "train", {**recipe.env_kwargs, **env_kwargs})
    said, warning = describe_data(probe.unwrapped)
    probe.close()
    run.path.mkdir(parents=True, exist_ok=True)
    if total != asked:
        print(f"{asked} steps rounded up to {total}: PPO trains whole rollouts of {recipe.rollout_steps} steps "
              f"(n_envs x n_steps of the recipe)")
    for line in said:
        print(line)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    config = {
        # relative to the data root for a shipped spec (a shipped run folder holds no path of the machine
        # that trained it), absolute for one's own: --resume and bench's notes find it from any folder
        "algo": ALGO, "env": spec.id, "env_spec": portable_path(spec.path) if spec.path else None,
        "env_kwargs": {**recipe.env_kwargs, **env_kwargs}, "seed": int(seed), "timesteps": total,
        "eval": {"split": "val", "freq": freq, "episodes": EVAL_EPISODES, "seed": ppo_run.EVAL_SEED},
        "hyperparams_file": portable_path(recipe.file), "hyperparams_key": recipe.key, "hyperparams": recipe.raw,
        "versions": ppo_run.versions(), "sessions": [],
        "state": {"num_timesteps": 0, "best_val_return": None, "best_at": None, "wall_time_s": 0.0},
    }
    if spec.path is None:  # an EnvSpec object, not a file: keep all of it, so resume can rebuild it
        config["env_spec_fields"] = {k: getattr(spec, k) for k in ("id", "description", "device", "catalog",
                                                                   "dataset", "reward", "period_s",
                                                                   "max_episode_steps", "workload")}
    run.write_config(config)
    with torch_threads(1):  # small MLPs: one thread is as fast, and results do not depend on the core count
        return _learn(run, config, spec, recipe, model=None, progress=progress)


def _names(traces, windows: bool = False) -> str:
    """``train/a.csv, train/b.csv and 3 more``; with ``windows``, each trace's length in intervals."""
    names = [t.name.split("/", 1)[-1] + (f" ({len(t)} intervals)" if windows else "") for t in traces]
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def describe_data(env: AdaScaleEnv) -> tuple[list[str], str | None]:
    """What a run trains and validates on, file by file, in lines to print; and a warning when
    the validation split is too short to choose checkpoints on (less than one episode window)."""
    from adascale_rl.environment.env import replay_note, split_traces, val_rule

    ds = env.dataset
    train, val = env.traces, split_traces(ds, "val")
    n_val = sum(len(t) for t in val)
    short = len(ds.train) < 4
    lines = [f"data: {ds.path} ({ds.name}, {ds.meta.get('source', '?')} on {ds.device})",
             f"  train: {len(train)} trace{'s' if len(train) != 1 else ''}"
             f"{', the first four fifths of each' if short else ''}: {_names(train, windows=short)}",
             f"  validation: {val_rule(ds)}: {_names(val, windows=True) or 'none'}"]
    if ds.test:
        lines.append(f"  not used here: the test split ({_names(ds.test)}), for bench and evaluate")
    replay = replay_note(ds, env.device)
    if replay:
        lines.append(f"  {replay}")
    warning = None
    if n_val < env.window:
        warning = (f"the validation split of {ds.name} holds only {n_val} intervals ({n_val * env.period_s:g} s; "
                   f"{val_rule(ds)}), less than one {env.window}-interval episode: a checkpoint chosen on it is "
                   f"mostly chance; record longer (a fifth of each train trace is held out) or 4+ train traces")
    return lines, warning


def _resume(path: Path, env_id: str | None, timesteps: int | None, progress: bool) -> Path:
    run = RunFolder(path)
    config = run.read_config()
    if not (run / ppo_run.MODEL).exists():
        raise FileNotFoundError(f"{run.path} has no {ppo_run.MODEL} to resume from (it stopped before "
                                f"its first checkpoint); start it again instead")
    spec = _spec_of(config)
    if env_id and env_id not in (spec.id, spec.name, config.get("env_spec")):
        raise ValueError(f"{run.path} is a run on {spec.id}, not {env_id}")
    recipe = parse(config["hyperparams"], config["hyperparams_file"], config["hyperparams_key"])
    if timesteps is not None:
        config["timesteps"] = _whole_rollouts(int(timesteps), recipe)
    with torch_threads(1):
        return _learn(run, config, spec, recipe, model=run / ppo_run.MODEL, progress=progress)


def _spec_of(config: dict) -> EnvSpec:
    if config.get("env_spec_fields"):
        return EnvSpec(**config["env_spec_fields"])
    if config.get("env_spec"):
        p = resolve_portable(config["env_spec"])
        if p.exists():
            return find_spec(str(p))
    return find_spec(config["env"])


def _model_kwargs_for(recipe: Recipe, env: AdaScaleEnv, train_env: AdaScaleEnv | None = None) -> tuple[dict, dict]:
    """The recipe's model arguments, with environment constants for a features extractor that needs them.

    A features extractor class with a ``kwargs_for(env)`` class method (such as
    :class:`adascale_rl.policies.prior.VariantSlack`) gets the catalog constants of
    this environment, so one recipe serves every environment. One with a
    ``tuned_kwargs(train_env)`` class method (such as
    :class:`adascale_rl.policies.prior.PlannerPrior`) also gets the parameters it
    tunes on the train split, unless the recipe sets them. Returns (model kwargs,
    the tuned parameters).
    """
    kwargs = dict(recipe.model_kwargs)
    pk = dict(kwargs.get("policy_kwargs") or {})
    cls = pk.get("features_extractor_class")
    tuned: dict = {}
    if cls is not None and hasattr(cls, "kwargs_for"):
        fixed = dict(pk.get("features_extractor_kwargs") or {})
        if train_env is not None and hasattr(cls, "tuned_kwargs") and not set(cls.TUNED) <= set(fixed):
            tuned = {k: v for k, v in cls.tuned_kwargs(train_env).items() if k not in fixed}
        pk["features_extractor_kwargs"] = {**cls.kwargs_for(env), **tuned, **fixed}
        kwargs["policy_kwargs"] = pk
    return kwargs, tuned


def _learn(run: RunFolder, config: dict, spec: EnvSpec, recipe: Recipe, model: Path | None,
           progress: bool) -> Path:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import is_masking_supported
    from stable_baselines3.common.vec_env import VecNormalize

    seed, total = int(config["seed"]), int(config["timesteps"])
    env_kwargs = dict(config["env_kwargs"])
    state = config["state"]
    done = int(state["num_timesteps"])
    if model is not None and done >= total:
        print(f"{run.path}: already trained for {done} of {total} steps; nothing to do "
              f"(pass -n/--timesteps with a larger total to continue)")
        return run.path

    started = time.time()
    session = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": command_line(), "from_timesteps": done, "to_timesteps": total}
    config["sessions"].append(session)
    wall_before = float(state.get("wall_time_s") or 0.0)
    venv = eval_env = val_vec = None
    try:
        # the venv is seeded again by the model (seed + steps done) right before its first reset
        venv = _make_vec_env(spec, recipe, env_kwargs, seed + done)
        if recipe.normalize is not None:
            if model is not None and (run / ppo_run.STATS).exists():
                venv = VecNormalize.load(str(run / ppo_run.STATS), venv)
                venv.training = True
            else:
                venv = VecNormalize(venv, **recipe.normalize)
        if not is_masking_supported(venv):  # pragma: no cover - AdaScaleEnv always has action_masks()
            raise RuntimeError("the environment does not expose action_masks()")
        eval_env = make_env(spec, "val", env_kwargs)
        windows = pick_episodes(eval_env.unwrapped.evaluation_episodes(), config["eval"]["episodes"])
        if model is None:  # a fresh run fixes its validation's start variants once; a resumed one reads them
            config["eval"]["start_variants"] = ppo_run.start_variants_for(recipe.val_episodes, len(windows),
                                                                          len(eval_env.unwrapped.catalog))
            run.write_config(config)
        starts = int(config["eval"].get("start_variants", 1))  # runs from before the key: the usual start
        episodes = validation_episodes(eval_env, windows, starts)
        val_vec = _make_val_env(spec, recipe, env_kwargs, len(episodes))

        if model is None:
            print(f"training {spec.id} for {total} steps into {run.path} (seed {seed}, recipe "
                  f"'{recipe.key}' of {recipe.file}; validation every {config['eval']['freq']} steps)")
            model_kwargs, tuned = _model_kwargs_for(recipe, eval_env.unwrapped,
                                                    AdaScaleEnv(spec, split="train", **env_kwargs))
            if tuned:
                config["tuned_on_train"] = tuned
                print(f"planner prior: {_plain_kv(tuned)}, tuned on the train split")
            said = expectation(recipe, model_kwargs, total)
            if said:
                print(said)
            agent = MaskablePPO(recipe.policy, venv, seed=seed, device="cpu", verbose=0,
                                tensorboard_log=str(run / ppo_run.TENSORBOARD), **model_kwargs)
        else:
            agent = MaskablePPO.load(str(model), env=venv, device="cpu",
                                     tensorboard_log=str(run / ppo_run.TENSORBOARD))
            agent.set_random_seed(seed + agent.num_timesteps)
            best = state.get("best_val_return")
            print(f"resuming {run.path} from {model.name} at {agent.num_timesteps} of {total} steps "
                  f"(best validation return so far: {'none' if best is None else f'{best:.2f}'})")
            done = agent.num_timesteps

        def on_checkpoint(steps: int, metrics: dict | None, is_best: bool) -> None:
            if metrics is not None and steps == 0:
                state["start_val_return"] = float(metrics["mean_return"])
                print(f"validation return at step 0 (the untrained policy{', i.e. the prior' if said else ''}): "
                      f"{metrics['mean_return']:.2f} over {len(windows)} validation windows"
                      f"{'' if starts == 1 else f' x {starts} start variants'}")
            state["num_timesteps"] = int(steps)
            if metrics is not None and is_best:
                state["best_val_return"] = float(metrics["mean_return"])
                state["best_at"] = int(steps)
            state["wall_time_s"] = round(wall_before + time.time() - started, 2)
            session["wall_time_s"] = round(time.time() - started, 2)
            session["reached_timesteps"] = int(steps)
            run.write_config(config)

        best = state["best_val_return"]
        validation = ValidationCallback(run, eval_env if val_vec is None else val_vec, episodes,
                                        config["eval"]["freq"], on_checkpoint,
                                        best=-np.inf if best is None else best, last_eval=done)
        callbacks = build_callbacks(recipe)
        if not any(isinstance(c, RolloutInfoLogger) for c in callbacks):
            callbacks.append(RolloutInfoLogger())
        callbacks.append(validation)
        bar = ppo_run.TrainingProgress(total, config["eval"]["freq"]) if progress else None
        if bar is not None:
            callbacks.append(bar)  # last: it starts after the step-0 validation, so its clock counts validations
        try:
            agent.learn(total_timesteps=total - done, callback=callbacks, tb_log_name=ppo_run.TB_NAME,
                        reset_num_timesteps=model is None, progress_bar=False)
        except KeyboardInterrupt as exc:
            if bar is not None:
                bar.close()
            run.save_checkpoint(agent, agent.get_vec_normalize_env())
            on_checkpoint(agent.num_timesteps, None, False)
            print(f"interrupted at {agent.num_timesteps} steps; checkpoint saved, continue with "
                  f"--resume {run.path}", file=sys.stderr)
            exc.reported = True  # the command line says nothing more
            raise
    finally:
        for e in (venv, eval_env, val_vec):
            if e is not None:
                e.close()
    secs = time.time() - started
    steps = agent.num_timesteps - session["from_timesteps"]
    best, start, at = state["best_val_return"], state.get("start_val_return"), state["best_at"]
    if best is None:
        result = "no validation yet"
    elif at == 0:
        result = f"best validation return {best:.2f} at step 0: no checkpoint beat the untrained policy, which is kept"
    else:
        result = f"best validation return {best:.2f} at step {at}" + (
            "" if start is None else f" ({best - start:+.2f} over step 0)")
    print(f"trained {run.path}: {agent.num_timesteps} steps ({steps / max(secs, 1e-9):.0f} steps/s this session); "
          f"{result}")
    return run.path


def _plain_kv(d: dict) -> str:
    """``{'horizon': 20.0, 'sigma': 0.3}`` as ``horizon 20 and sigma 0.3``."""
    items = [f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items()]
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


def expectation(recipe: Recipe, model_kwargs: dict, total_steps: int | None = None) -> str | None:
    """What a run that starts from a prior should (not) show, said before it starts: with a
    prior, the validation return barely moves, and that is not a fault; a run of ``total_steps`` within the
    critic's warm-up never moves the actor. None without a prior."""
    pk = model_kwargs.get("policy_kwargs") or {}
    cls = pk.get("features_extractor_class")
    if cls is None or not hasattr(cls, "TUNED"):
        return None
    temperature = (pk.get("features_extractor_kwargs") or {}).get("temperature")
    warmup = next((kw.get("steps", 20_000) for name, kw in recipe.callbacks if name.endswith("CriticWarmup")), None)
    return ("what to expect: the policy starts as the planner prior"
            + (f" (temperature {temperature:g})" if temperature is not None else "")
            + " and PPO learns a residual on it"
            + (f"; the actor is frozen for the first {warmup} steps while the critic warms up" if warmup else "")
            + ". In the shipped runs the residual moved the validation return by a few tenths at most in 100k "
              "steps (docs/TRAINING.md): a flat validation return is expected, not a fault."
            + (f" This run's {total_steps} steps end within the warm-up: its policy stays the prior (give -n more "
               f"than {warmup} to learn a residual)." if warmup and total_steps is not None
               and total_steps <= warmup else ""))


def train_command(args) -> int:
    """``adascale-rl train``: arguments from :mod:`adascale_rl.cli`."""
    env_kwargs = parse_env_kwargs(args.env_kwargs)
    if args.traces is not None:
        from adascale_rl.context.traces import csv_folder

        if args.resume is not None:
            raise ValueError("--traces does not apply to --resume: the run's config.yml names its data")
        if "dataset" in env_kwargs:
            raise ValueError("give the data once: --traces PATH or --env-kwargs dataset=PATH, not both")
        if not Path(args.traces).exists():
            raise FileNotFoundError(f"--traces {args.traces}: no such file or folder")
        if csv_folder(Path(args.traces)):
            raise ValueError(f"--traces {args.traces} is a plain folder of CSV files, which bench and evaluate "
                             f"replay as test traces; train needs a dataset with a train/ split (what "
                             f"`adascale-rl record` writes; docs/TRACES.md, 'Using your own data')")
        env_kwargs["dataset"] = args.traces
    train(args.env, timesteps=args.timesteps, seed=args.seed, out=args.out, resume=args.resume,
          hyperparams=args.hyperparams, eval_freq=args.eval_freq, env_kwargs=env_kwargs,
          progress=not args.no_progress)
    return 0


# ---------------------------------------------------------------- the learned controller

def _model_files(folder: Path) -> tuple[Path, Path | None]:
    for m in (ppo_run.BEST_MODEL, ppo_run.MODEL):
        if (folder / m).exists():
            return folder / m, _stats_for(folder / m)
    raise FileNotFoundError(f"{folder} holds neither {ppo_run.BEST_MODEL} nor {ppo_run.MODEL}")


class PPOPolicy:
    """A trained (Maskable)PPO as a :class:`~adascale_rl.policies.base.Policy`.

    Observations are normalised with the run's saved statistics (frozen); the
    action is the most probable one among those ``info["action_mask"]`` allows
    (keep is never masked). The mask is applied to the logits here, so a plain
    PPO model (rl-zoo3's ``--algo ppo``) is masked the same way.
    """

    kind = "learned"

    def __init__(self, model, obs_norm, name: str = "ppo", path: Path | None = None,
                 config: dict[str, Any] | None = None):
        self.model = model
        self.obs_norm = obs_norm
        self.name = name
        self.path = path
        self.config = config or {}
        self.env = None

    def reset(self, env: Any) -> None:
        env = getattr(env, "unwrapped", env)
        want, n = self.model.observation_space.shape, self.model.action_space.n
        if env.observation_space.shape != want or env.action_space.n != n:
            which = getattr(getattr(env, "env_spec", None), "id", env)
            raise ValueError(f"{self.path or self.name} was trained for observations {want} and {n} actions, "
                             f"but {which} has {env.observation_space.shape} and {env.action_space.n}")
        self.env = env

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Unmasked action logits for one raw observation."""
        import torch as th

        o = np.asarray(obs, dtype=np.float32)
        if self.obs_norm is not None:
            o = self.obs_norm.normalize_obs(o).astype(np.float32)
        policy = self.model.policy
        with th.no_grad():
            x = th.as_tensor(o).reshape(1, -1)
            # the policy's own distribution, so custom policies (e.g. the planner-prior residual) count in full
            return policy.get_distribution(x).distribution.logits[0].numpy()

    def logits_batch(self, obs: np.ndarray) -> np.ndarray:
        """Unmasked action logits ``(B, actions)`` for raw observations ``(B, size)``, in one forward pass (the
        prior's several hundred small operations cost about what one observation's do)."""
        import torch as th

        o = np.asarray(obs, dtype=np.float32)
        if self.obs_norm is not None:
            o = self.obs_norm.normalize_obs(o).astype(np.float32)
        with th.no_grad():
            return self.model.policy.get_distribution(th.as_tensor(o)).distribution.logits.numpy()

    def act_batch(self, obs: np.ndarray, infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """:meth:`act` for many observations at once (``rollout.evaluate`` plays episodes side by side with it).
        The batch's matrix products may round the last float32 bits of a logit differently from one
        observation's; on the shipped controllers' whole test splits, seeds 0-4, no decision changed
        (``benchmarks/evaluate_batch.py``; ``tests/policies/test_rollout.py`` on a part of Rpi4-Vision's)."""
        logits = self.logits_batch(obs)
        for j, info in enumerate(infos):  # each row's own mask (its environment's, in its info)
            m = None if info is None else info.get("action_mask")
            if m is not None:
                logits[j] = np.where(np.asarray(m, dtype=bool), logits[j], -np.inf)
        return np.argmax(logits, axis=1)

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        logits = self.logits(obs)
        mask = info.get("action_mask") if info is not None else None
        if mask is None and self.env is not None:
            mask = self.env.action_masks()
        if mask is not None:
            logits = np.where(np.asarray(mask, dtype=bool), logits, -np.inf)
        return int(np.argmax(logits))

    def __repr__(self) -> str:
        return f"PPOPolicy({self.name!r}, {self.path})"


def _stats_for(model_file: Path) -> Path | None:
    """The normalisation statistics saved with a model file (ours, or rl-zoo3's layout)."""
    folder = model_file.parent
    candidates = [folder / (ppo_run.BEST_STATS if model_file.name == ppo_run.BEST_MODEL else ppo_run.STATS),
                  folder / model_file.stem / "vecnormalize.pkl"]  # rl-zoo3: <run>/<env>.zip + <run>/<env>/
    return next((c for c in candidates if c.exists()), None)


def load_policy(path: str | os.PathLike, name: str | None = None) -> PPOPolicy:
    """A run folder, a shipped ``agents/<env>/ppo/`` folder (also as ``<env>/ppo``) or a model .zip.

    Uses ``best_model.zip`` with ``best_vecnormalize.pkl`` when present, else
    ``model.zip`` with ``vecnormalize.pkl``. A .zip from rl-zoo3 (plain PPO)
    loads too, with its ``vecnormalize.pkl``. The name is ``name``, else the
    folder's (``ppo``, ``ppo-seed0``).
    """
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    p = paths.resolve(path, "agents")
    if p.is_file():
        model_file, folder = p, p.parent
        stats = _stats_for(p)
    else:
        folder = p
        model_file, stats = _model_files(folder)
    model = None
    errors = []
    for cls in (MaskablePPO, PPO):
        try:
            model = cls.load(str(model_file), device="cpu")
            break
        except Exception as exc:  # try the next algorithm; report all if none fits
            errors.append(f"{cls.__name__}: {exc}")
    if model is None:
        raise ValueError(f"{model_file} is not a loadable PPO model ({'; '.join(errors)})")
    obs_norm = None
    if stats is not None:
        with open(stats, "rb") as fh:
            obs_norm = pickle.load(fh)
        obs_norm.training = False
    config = None
    if (folder / ppo_run.CONFIG).exists():
        config = yaml.safe_load((folder / ppo_run.CONFIG).read_text(encoding="utf-8"))
    return PPOPolicy(model, obs_norm, name=name or folder.name, path=model_file, config=config)
