"""Train, select and ship the PPO controller of every shipped environment, with its card.

    python scripts/ship_controllers.py [--env NAME ...] [--seeds 0 1 2] [--jobs 2] [--bench-seeds 5]

For each environment: trains one run per seed with the shared recipe
(``agents/hyperparams/ppo.yml``, key ``default``) via ``adascale-rl train``
(``--jobs`` runs at a time, each on one torch thread), picks the seed whose best
checkpoint scored highest on the validation split, copies that checkpoint to
``agents/<env-name>/ppo/``, benchmarks it against every heuristic and the
oracle on the test split with ``adascale-rl bench``, and writes
``agents/<env-name>/ppo/card.md`` from what those commands recorded.
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adascale_rl.context.traces import load_dataset  # noqa: E402
from adascale_rl.environment.env import val_rule  # noqa: E402
from adascale_rl.environment.registration import registered_specs  # noqa: E402

KEEP = ("best_model.zip", "best_vecnormalize.pkl", "config.yml", "evaluations.csv")


def train(env_id: str, seed: int, out: Path, timesteps: int | None) -> tuple[int, Path]:
    cmd = [sys.executable, "-m", "adascale_rl.cli", "train", "--env", env_id, "--seed", str(seed), "--out", str(out),
           "--no-progress"]
    if timesteps:
        cmd += ["-n", str(timesteps)]
    if out.exists() and (out / "config.yml").exists():
        cmd = [sys.executable, "-m", "adascale_rl.cli", "train", "--resume", str(out), "--no-progress"]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc != 0:
        raise SystemExit(f"training {env_id} seed {seed} failed; see {log}")
    return seed, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", default=None, help="spec name (default: every shipped environment)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--timesteps", type=int, default=None, help="default: the recipe's n_timesteps")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", default=str(ROOT / "runs"), help="where the training runs go")
    ap.add_argument("--bench-seeds", type=int, default=5)
    ap.add_argument("--skip-train", action="store_true", help="reuse finished runs")
    args = ap.parse_args()
    specs = [s for s in registered_specs() if args.env is None or s.name in args.env or s.id in args.env]
    runs = Path(args.runs)
    jobs = [(s, seed) for s in specs for seed in args.seeds]
    if not args.skip_train:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda j: train(j[0].id, j[1], runs / j[0].name / f"ppo-seed{j[1]}", args.timesteps), jobs))
    for spec in specs:
        rows = []
        for seed in args.seeds:
            cfg = yaml.safe_load((runs / spec.name / f"ppo-seed{seed}" / "config.yml").read_text())
            rows.append({"seed": seed, "best_val_return": cfg["state"]["best_val_return"],
                         "best_at": cfg["state"]["best_at"], "timesteps": cfg["state"]["num_timesteps"],
                         "wall_time_s": cfg["state"]["wall_time_s"], "command": cfg["sessions"][0]["command"],
                         "config": cfg})
        best = max(rows, key=lambda r: r["best_val_return"])
        src = runs / spec.name / f"ppo-seed{best['seed']}"
        dst = ROOT / "agents" / spec.name / "ppo"
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir(parents=True)
        for f in KEEP:
            shutil.copy2(src / f, dst / f)
        with open(dst / "seeds.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, ["seed", "best_val_return", "best_at", "timesteps", "wall_time_s"], extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        bench_out = runs / spec.name / "bench"
        shown = bench_out.relative_to(ROOT) if bench_out.is_relative_to(ROOT) else bench_out
        bench_cmd = ["adascale-rl", "bench", "--env", spec.id, "--seeds", str(args.bench_seeds), "--out", str(shown),
                     "--no-progress"]
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "adascale_rl.cli", *bench_cmd[1:-2], str(bench_out), "--no-progress"],
                       check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        write_card(spec, dst, rows, best, bench_out, " ".join(bench_cmd), time.time() - t0)
        print(f"{spec.id}: shipped seed {best['seed']} (validation {best['best_val_return']:.2f}) -> {dst}")


def write_card(spec, dst: Path, rows: list[dict], best: dict, bench_out: Path, bench_cmd: str, bench_s: float) -> None:
    with open(bench_out / "results.csv") as fh:
        res = [r for r in csv.DictReader(fh) if r["env"] == spec.id]
    by = {r["policy"]: r for r in res}
    ppo = by["ppo"]
    heur = [r for r in res if r["kind"] == "heuristic"]
    best_h = max(heur, key=lambda r: float(r["mean_return"]))
    cfg = best["config"]
    lines = [
        f"# PPO controller for {spec.id}",
        "",
        f"MaskablePPO (sb3-contrib) trained on the train split of `{spec.dataset}` with the shared recipe "
        f"`{Path(cfg['hyperparams_file']).relative_to(ROOT) if Path(cfg['hyperparams_file']).is_relative_to(ROOT) else cfg['hyperparams_file']}` "
        f"(key `{cfg['hyperparams_key']}`, no per-environment tuning); checkpoint chosen on the validation split "
        f"({val_rule(load_dataset(spec.dataset_path()))}, held out) "
        f"among {len(rows)} training seeds.",
        "",
        "## How it was trained",
        "",
        "| seed | command | timesteps | wall time | best validation return | at step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " (shipped)" if r is best else ""
        command = r["command"].split(" train ", 1)[-1].replace(str(ROOT) + "/", "")
        lines.append(f"| {r['seed']}{mark} | `adascale-rl train {command}` | "
                     f"{r['timesteps']} | {r['wall_time_s']:.0f} s | {r['best_val_return']:.2f} | {r['best_at']} |")
    tuned = cfg.get("tuned_on_train")
    if tuned:
        lines += ["", f"The planner prior's margins, tuned on the train split before training (as `bench` tunes the "
                      f"planner heuristic): {', '.join(f'{k} {v:g}' for k, v in tuned.items())}."]
    lines += [
        "",
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores, one torch thread per run, "
        f"{len(rows)} runs two at a time; versions: {cfg['versions']}.",
        "",
        "## Test results",
        "",
        f"`{bench_cmd}` ({bench_s:.0f} s): test split of `{spec.dataset}`, paired seeds, mean episode return with "
        "95% CI over seeds (the full table is in the bench output folder when you re-run it).",
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
        f"PPO / best heuristic ({best_h['policy']}): {float(ppo['mean_return']) / float(best_h['mean_return']):.3f}; "
        f"PPO / oracle: {float(ppo['return_vs_oracle']):.3f}.",
        "",
        f"Regenerate: `python scripts/ship_controllers.py --env {spec.name}`.",
        "",
    ]
    (dst / "card.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
