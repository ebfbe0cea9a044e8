"""Training cost of the catalog: one joint ("self-evolving") run vs. training each branch alone.

Cost is counted arithmetic, not wall time (the machine is shared and noisy): multiply-
accumulates of every forward pass, with a backward pass costed at 2x its forward. Both sides
use the same data, optimiser, schedule, augmentation, batch size and epoch budget.

- **Joint**: the cached (or freshly trained) supernet of ``adascale-rl profile``'s full recipe:
  every step runs the largest, the smallest and one random (width, resolution) pass, each
  evaluating all exits; plus one BN-calibration pass over the training images per catalog
  branch (forward only).
- **Separate**: each distinct catalog branch, as a plain network from random init, trained on
  the labels alone until its validation accuracy first reaches the accuracy the joint run gave
  that branch (same validation split), or until the epoch budget runs out -- then its full
  budget is counted and the branch is flagged (a lower bound on what it would really cost).

Compression fine-tuning (prune / low-rank) is the same on both sides and left out of both.

Usage::

    python benchmarks/elastic_training_cost.py [--seed 0] [--json results.json] [--branch-set catalog|all]
                                               [--reuse earlier.json] [--branches N]
                                               [--joint-set KEY=JSON ...]

``--joint-set`` overrides a joint-training setting of the recipe (a ``TrainConfig`` field,
value as JSON), e.g. ``--joint-set teacher_res_cycle=[16]``, to measure a candidate recipe.
The separate side reads only the settings both sides share (epochs, batch, optimiser,
schedule, augmentation, seed); overriding one of those changes both sides alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch


def main(argv=None) -> int:
    from adascale_rl.elastic.data import load_data
    from adascale_rl.elastic.network import build_static
    from adascale_rl.elastic.extract import count_macs, extract_branch
    from adascale_rl.elastic.train import accuracy, calibrate_bn, train_single
    from adascale_rl.elastic.variants import full_recipe, trained_supernet

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--branches", type=int, default=None, help="only the first N catalog branches (smoke runs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--branch-set", choices=("catalog", "all"), default="catalog",
                    help="the catalog's distinct branches, or every (width, exit, resolution) the supernet serves")
    ap.add_argument("--reuse", default=None, metavar="JSON",
                    help="take rows for branches already measured (same seed and recipe) from an earlier --json")
    ap.add_argument("--joint-set", action="append", default=[], metavar="KEY=JSON",
                    help="override a training setting of the recipe, e.g. teacher_res_cycle=[16] (repeatable)")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    recipe = full_recipe(a.seed)
    if a.joint_set:
        over = {}
        for item in a.joint_set:
            key, _, value = item.partition("=")
            if key not in {f.name for f in dataclasses.fields(recipe.train)}:
                ap.error(f"--joint-set {item}: {key!r} is not a training setting")
            try:
                v = json.loads(value)
            except json.JSONDecodeError:
                ap.error(f"--joint-set {item}: the value after '=' must be JSON (e.g. teacher_res_cycle=[16])")
            over[key] = tuple(v) if isinstance(v, list) else v
        recipe.train = dataclasses.replace(recipe.train, **over)
    data = load_data("digits", a.seed)
    arch = recipe.arch_for(data)
    net, jlog, folder = trained_supernet(arch, data, recipe.train, progress=False, threads=a.threads)
    if a.branch_set == "all":
        branches = arch.branches()[: a.branches]
    else:
        branches = list(dict.fromkeys(s.branch for s in recipe.specs()))[: a.branches]
    reuse = {}
    if a.reuse:
        with open(a.reuse) as fh:
            old = json.load(fh)
        if old["seed"] == a.seed and old["epoch_budget"] == recipe.train.epochs and \
                old.get("train", recipe.train.to_json()) == recipe.train.to_json():
            reuse = {r["branch"]: r for r in old["rows"]}
    print(f"joint: {jlog.epochs} epochs, {jlog.steps} steps, {jlog.macs / 1e12:.3f} TMAC, {jlog.wall_s:.0f} s "
          f"(cached run, {folder})", flush=True)
    joint_macs = jlog.macs
    rows = []
    t_sep = time.perf_counter()
    for b in branches:
        static = extract_branch(net, b)
        calib = calibrate_bn(static, data.x_train)
        joint_macs += calib
        target = accuracy(static, data.x_val, data.y_val)
        if b.id in reuse and abs(reuse[b.id]["joint_val_acc"] - target) < 1e-9:
            rows.append({**reuse[b.id], "reused": True})
            print(f"{b.id:16s} reused from {a.reuse}", flush=True)
            continue
        torch.manual_seed(a.seed)
        alone = build_static(arch, b)
        log = train_single(alone, data, recipe.train, target_val=target)
        reached = log.history[-1]["val_acc"] >= target
        rows.append({"branch": b.id, "macs_per_inference": count_macs(alone, data.x_train[:1]),
                     "joint_val_acc": target, "joint_test_acc": accuracy(static, data.x_test, data.y_test),
                     "alone_val_acc": log.history[-1]["val_acc"],
                     "alone_best_val_acc": max(h["val_acc"] for h in log.history), "reached": reached,
                     "epochs": log.epochs, "steps": log.steps, "macs": log.macs, "wall_s": round(log.wall_s, 1)})
        print(f"{b.id:16s} joint val {target:.3f} (test {rows[-1]['joint_test_acc']:.3f})  "
              f"alone {rows[-1]['alone_val_acc']:.3f} after {log.epochs:2d} "
              f"epochs {'(reached)' if reached else '(NOT reached: full budget counted)'}  "
              f"{log.macs / 1e12:.3f} TMAC {log.wall_s:.0f} s", flush=True)
    sep_macs = sum(r["macs"] for r in rows)
    res = {
        "seed": a.seed, "threads": a.threads, "branch_set": a.branch_set, "branches": len(rows),
        "epoch_budget": recipe.train.epochs, "train": recipe.train.to_json(),
        "joint": {"train_macs": jlog.macs, "bn_calibration_macs": joint_macs - jlog.macs, "total_macs": joint_macs,
                  "steps": jlog.steps, "wall_s": round(jlog.wall_s, 1)},
        "separate": {"total_macs": sep_macs, "steps": sum(r["steps"] for r in rows),
                     "wall_s": round(time.perf_counter() - t_sep, 1),
                     "not_reached": [r["branch"] for r in rows if not r["reached"]]},
        "ratio_joint_over_separate_macs": joint_macs / sep_macs,
        "rows": rows,
    }
    print(f"\njoint {joint_macs / 1e12:.3f} TMAC vs separate {sep_macs / 1e12:.3f} TMAC over {len(rows)} branches: "
          f"ratio {res['ratio_joint_over_separate_macs']:.3f} ({(1 - res['ratio_joint_over_separate_macs']) * 100:.1f} % "
          f"less training arithmetic); not reached alone: {res['separate']['not_reached'] or 'none'}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
