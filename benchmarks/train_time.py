"""Wall time of one shipped-recipe training run, on the native vector environment and on single ones.

    python benchmarks/train_time.py [--env AdaScale/Rpi4-Vision-v4] [--recipe agents/hyperparams/ppo.yml]
        [--seed 0] [--rounds 2] [--timesteps N]

Each round trains the same run twice with ``adascale-rl train`` in a fresh process (one torch
thread, as the shipped runs): once with the recipe as shipped (``vectorized: true``: one
AdaScaleVectorEnv of ``n_envs`` sub-environments, validation of every window at once) and once
with ``vectorized: false`` (a DummyVecEnv of ``n_envs`` single environments, validation window
by window); the order alternates between rounds so that background load hits both alike. It
prints each run's wall time, the per-round ratio, and whether the two runs' best models have
identical parameters (they should: the vector environment replays the single ones, and the
training loop sees the same numbers). The machine and its load average (before and after) are
printed: the times mean something on a quiet machine only; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _params(run: Path) -> dict:
    with zipfile.ZipFile(run / "best_model.zip") as z:
        return torch.load(io.BytesIO(z.read("policy.pth")), map_location="cpu")


def _recipe_copy(recipe: Path, vectorized: bool, folder: Path) -> Path:
    data = yaml.safe_load(recipe.read_text())
    for entry in data.values():
        if isinstance(entry, dict):
            entry["vectorized"] = vectorized
    out = folder / f"{recipe.stem}-{'vec' if vectorized else 'single'}.yml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _train(env: str, recipe: Path, seed: int, out: Path, timesteps: int | None) -> float:
    cmd = [sys.executable, "-m", "adascale_rl.cli", "train", "--env", env, "--seed", str(seed), "--out", str(out),
           "--hyperparams", str(recipe), "--no-progress"]
    if timesteps:
        cmd += ["-n", str(timesteps)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"train failed ({' '.join(cmd)}):\n{res.stderr[-2000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="AdaScale/Rpi4-Vision-v4")
    ap.add_argument("--recipe", default=str(ROOT / "agents" / "hyperparams" / "ppo.yml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timesteps", type=int, default=None, help="default: the recipe's n_timesteps")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{args.env}, seed {args.seed}, recipe {args.recipe}, {args.rounds} rounds")
    walls: dict[str, list[float]] = {"vector": [], "single": []}
    same = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recipes = {"vector": _recipe_copy(Path(args.recipe), True, tmp),
                   "single": _recipe_copy(Path(args.recipe), False, tmp)}
        for r in range(args.rounds):
            order = ["vector", "single"] if r % 2 == 0 else ["single", "vector"]
            runs = {}
            for kind in order:
                runs[kind] = tmp / f"{kind}-{r}"
                walls[kind].append(_train(args.env, recipes[kind], args.seed, runs[kind], args.timesteps))
                print(f"  round {r}: {kind:6s} {walls[kind][-1]:7.1f} s")
            a, b = _params(runs["vector"]), _params(runs["single"])
            same.append(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a))
    ratios = [s / v for v, s in zip(walls["vector"], walls["single"])]
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"vector: median {statistics.median(walls['vector']):.1f} s "
          f"(range {min(walls['vector']):.1f}-{max(walls['vector']):.1f})")
    print(f"single: median {statistics.median(walls['single']):.1f} s "
          f"(range {min(walls['single']):.1f}-{max(walls['single']):.1f})")
    print(f"single / vector wall time per round: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"best models identical in every round: {all(same)}")
    return 0 if all(same) else 1


if __name__ == "__main__":
    raise SystemExit(main())
