"""Train, select and ship the learned controllers of every shipped environment, with their cards.

    python scripts/ship_controllers.py [--env NAME ...] [--recipe ppo ppo-noprior] [--seeds 0 1 2] [--jobs 2]
                                       [--bench-seeds 5] [--skip-train]

Two controllers per environment, one per recipe of ``agents/hyperparams/``:

* ``ppo`` (``ppo.yml``): the reward-aware planner's predicted rewards as prior logits plus a PPO
  residual network (the shipped controller);
* ``ppo-noprior`` (``ppo-noprior.yml``): PPO alone on the same budget, to show what learning
  without the prior reaches.

For each environment and recipe it trains one run per seed via ``adascale-rl train`` (``--jobs``
runs at a time, each on one torch thread), picks the seed whose best checkpoint scored highest
on the validation split, copies that checkpoint to ``agents/<env-name>/<recipe>/``; then it
benchmarks both against every heuristic and the oracle on the test split with
``adascale-rl bench`` and writes each folder's ``card.md`` from what those commands recorded,
including how often the prior controller's decision differs from its prior's alone.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adascale_rl.context.traces import load_dataset  # noqa: E402
from adascale_rl.environment.env import val_rule  # noqa: E402
from adascale_rl.environment.registration import registered_specs  # noqa: E402

KEEP = ("best_model.zip", "best_vecnormalize.pkl", "config.yml", "evaluations.csv")
RECIPES = {
    "ppo": ("agents/hyperparams/ppo.yml",
            "the reward-aware planner's predicted rewards as prior logits plus a PPO residual network "
            "(residual policy learning)"),
    "ppo-noprior": ("agents/hyperparams/ppo-noprior.yml",
                    "PPO alone, without the planner prior, on the same budget: what learning by itself reaches"),
}


def train(env_id: str, recipe: str, seed: int, out: Path, timesteps: int | None) -> tuple[int, Path]:
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    cmd = [sys.executable, "-m", "adascale_rl.cli", "train", "--env", env_id, "--seed", str(seed), "--out", str(rel),
           "--hyperparams", RECIPES[recipe][0], "--no-progress"]
    if timesteps:
        cmd += ["-n", str(timesteps)]
    if out.exists() and (out / "config.yml").exists():
        trained_on = (yaml.safe_load((out / "config.yml").read_text()) or {}).get("env")
        if trained_on != env_id:  # a run of another environment version would be shipped as this one's
            raise SystemExit(f"{out} is a run on {trained_on}, not {env_id}: remove it (or pass --runs "
                             f"elsewhere) to train {env_id} afresh")
        cmd = [sys.executable, "-m", "adascale_rl.cli", "train", "--resume", str(rel), "--no-progress"]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc != 0:
        raise SystemExit(f"training {env_id} ({recipe}) seed {seed} failed; see {log}")
    return seed, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=None, help="spec name (default: every shipped environment)")
    ap.add_argument("--recipe", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--timesteps", type=int, default=None, help="default: the recipe's n_timesteps")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", default=str(ROOT / "runs"), help="where the training runs go")
    ap.add_argument("--bench-seeds", type=int, default=5)
    ap.add_argument("--skip-train", action="store_true", help="reuse finished runs")
    args = ap.parse_args()
    specs = [s for s in registered_specs() if args.env is None or s.name in args.env or s.id in args.env]
    runs = Path(args.runs)
    jobs = [(s, r, seed) for s in specs for r in args.recipe for seed in args.seeds]
    if not args.skip_train:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda j: train(j[0].id, j[1], j[2], runs / j[0].name / f"{j[1]}-seed{j[2]}",
                                          args.timesteps), jobs))
    for spec in specs:
        shipped = {}
        for recipe in args.recipe:
            rows = []
            for seed in args.seeds:
                cfg = yaml.safe_load((runs / spec.name / f"{recipe}-seed{seed}" / "config.yml").read_text())
                rows.append({"seed": seed, "best_val_return": cfg["state"]["best_val_return"],
                             "best_at": cfg["state"]["best_at"], "timesteps": cfg["state"]["num_timesteps"],
                             "wall_time_s": cfg["state"]["wall_time_s"], "command": cfg["sessions"][0]["command"],
                             "config": cfg})
            best = max(rows, key=lambda r: r["best_val_return"])
            src = runs / spec.name / f"{recipe}-seed{best['seed']}"
            dst = ROOT / "agents" / spec.name / recipe
            if dst.exists():
                shutil.rmtree(dst)
            dst.mkdir(parents=True)
            for f in KEEP:
                shutil.copy2(src / f, dst / f)
            with open(dst / "seeds.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, ["seed", "best_val_return", "best_at", "timesteps", "wall_time_s"],
                                   extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
            shipped[recipe] = (dst, rows, best)
            print(f"{spec.id} ({recipe}): shipped seed {best['seed']} (validation {best['best_val_return']:.2f}) -> {dst}")
        bench_out = runs / spec.name / "bench"
        shown = bench_out.relative_to(ROOT) if bench_out.is_relative_to(ROOT) else bench_out
        bench_cmd = ["adascale-rl", "bench", "--env", spec.id, "--seeds", str(args.bench_seeds), "--out", str(shown),
                     "--no-progress"]
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "adascale_rl.cli", *bench_cmd[1:]], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        bench_s = time.time() - t0
        for recipe, (dst, rows, best) in shipped.items():
            flips = prior_flips(spec, dst) if recipe == "ppo" else None
            write_card(spec, recipe, dst, rows, best, bench_out, " ".join(bench_cmd), bench_s, flips)


def prior_flips(spec, folder: Path) -> tuple[int, int]:
    """(decisions where the controller's target variant differs from its prior's alone, decisions) over the
    test split's evaluation windows, evaluation seed 0."""
    import torch as th

    from adascale_rl.environment.actions import target_of
    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.policies.ppo import load_policy
    from adascale_rl.policies.rollout import episode_seed

    policy = load_policy(folder)
    env = AdaScaleEnv(spec, split="test")
    ext = policy.model.policy.pi_features_extractor
    differ = total = 0
    for k, (trace, start) in enumerate(env.evaluation_episodes()):
        obs, info = env.reset(seed=episode_seed(0, k), options={"trace": trace, "start": start})
        policy.reset(env)
        done = False
        while not done:
            a = policy.act(obs, info)
            with th.no_grad():
                ext(th.as_tensor(np.asarray(obs, dtype=np.float32)[None]))
                prior = ext.last_prior[0].numpy()
            prior = np.where(np.asarray(info["action_mask"], bool), prior, -np.inf)
            loaded = env.sim_state.loaded
            differ += target_of(a, loaded) != target_of(int(np.argmax(prior)), loaded)
            total += 1
            obs, _, term, trunc, info = env.step(a)
            done = term or trunc
    return differ, total


def write_card(spec, recipe: str, dst: Path, rows: list[dict], best: dict, bench_out: Path, bench_cmd: str,
               bench_s: float, flips: tuple[int, int] | None) -> None:
    with open(bench_out / "results.csv") as fh:
        res = [r for r in csv.DictReader(fh) if r["env"] == spec.id]
    by = {r["policy"]: r for r in res}
    me = by[recipe]
    heur = [r for r in res if r["kind"] == "heuristic"]
    best_h = max(heur, key=lambda r: float(r["mean_return"]))
    cfg = best["config"]
    what = RECIPES[recipe][1]
    lines = [
        f"# Learned controller `{recipe}` for {spec.id}",
        "",
        f"**What it is:** {what}. MaskablePPO (sb3-contrib) trained on the train split of `{spec.dataset}` "
        f"with the shared recipe `{cfg['hyperparams_file']}` (key `{cfg['hyperparams_key']}`, no "
        f"per-environment tuning); checkpoint chosen on the validation split "
        f"({val_rule(load_dataset(spec.dataset_path()))}, held out) among {len(rows)} training seeds.",
    ]
    if flips is not None:
        d, n = flips
        lines += ["", f"On the test split (evaluation seed 0) its decision differs from its prior's alone in {d} of "
                      f"{n} intervals ({100.0 * d / max(n, 1):.2f} %): it is the planner with a small learned "
                      f"correction, not a policy learned from scratch (that is `ppo-noprior`)."]
    lines += [
        "",
        "## How it was trained",
        "",
        "| seed | command | timesteps | wall time | best validation return | at step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (shipped)" if r is best else ""
        lines.append(f"| {r['seed']}{mark} | `{r['command']}` | {r['timesteps']} | {r['wall_time_s']:.0f} s | "
                     f"{r['best_val_return']:.2f} | {r['best_at']} |")
    tuned = cfg.get("tuned_on_train")
    if tuned:
        lines += ["", f"The planner prior's margins, tuned on the train split before training (as `bench` tunes the "
                      f"planner heuristic): {', '.join(f'{k} {v:g}' for k, v in tuned.items())}."]
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one torch thread per run, runs two at a time"
        + (f", each collecting from one native vector environment of {cfg['hyperparams']['n_envs']} "
           f"sub-environments (recipe key `vectorized: true`)" if cfg["hyperparams"].get("vectorized") else "")
        + "; "
        f"versions: {cfg['versions']}.",
        "",
        "## Test results",
        "",
        f"`{bench_cmd}` ({bench_s:.0f} s): test split of `{spec.dataset}`, paired seeds, mean episode return with "
        "95% CI over the evaluation seeds' means (the full table, with every column defined, is in the bench "
        "output folder when you re-run it; docs/RESULTS.md).",
        "",
        "| policy | kind | return | ± 95% CI | vs oracle | eff. accuracy | miss rate | energy J | switches |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(res, key=lambda r: -float(r["mean_return"])):
        lines.append(f"| {r['policy']} | {r['kind']} | {float(r['mean_return']):.2f} | {float(r['ci95_return']):.2f} | "
                     f"{float(r['return_vs_oracle']):.3f} | {float(r['effective_accuracy']):.3f} | "
                     f"{float(r['miss_rate']):.3f} | {float(r['energy_j']):.1f} | {float(r['switches']):.1f} |")
    lines += [
        "",
        f"{recipe} / best heuristic ({best_h['policy']}): {float(me['mean_return']) / float(best_h['mean_return']):.3f}; "
        f"{recipe} / oracle: {float(me['return_vs_oracle']):.3f}.",
        "",
        f"Regenerate: `python scripts/ship_controllers.py --env {spec.name}`.",
        "",
    ]
    (dst / "card.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
