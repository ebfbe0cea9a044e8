"""Recipes (which branches and operators make the catalog), the cached trained supernet, and
building the deployable variants.

A variant = a branch ``(width, exit, resolution)`` x a chain of operators drawn from
``prune`` / ``lowrank`` then ``int8``. Its id is ``w<width>-<exit>-r<res>-<ops>``, e.g.
``w1-final-r24-prune+int8``; ``fp32`` when no operator is applied.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from adascale_rl.elastic.data import ImageData
from adascale_rl.elastic.extract import count_macs, count_params, extract_branch, fuse_bn
from adascale_rl.elastic.network import FINAL, ArchConfig, Branch, ElasticNet
from adascale_rl.elastic.operators import low_rank, prune_channels, quantize_int8
from adascale_rl.elastic.train import TrainConfig, TrainLog, accuracy, calibrate_bn, finetune, train_joint

CACHE_VERSION = 1


@dataclass(frozen=True)
class VariantSpec:
    branch: Branch
    ops: tuple[str, ...] = ()   # subset of ("prune" | "lowrank"), then optionally "int8"

    @property
    def id(self) -> str:
        return f"{self.branch.id}-{'+'.join(self.ops) or 'fp32'}"

    @property
    def catalog_operators(self) -> list[str]:
        ops = ["int8" if "int8" in self.ops else "fp32"]
        if self.branch.exit != FINAL:
            ops.append("early-exit")
        ops += [o for o in self.ops if o != "int8"]
        return ops


@dataclass
class Recipe:
    """Everything that decides the catalog: model shape, training, operators, timing effort."""

    name: str
    arch: dict = field(default_factory=dict)           # ArchConfig overrides
    train: TrainConfig = field(default_factory=TrainConfig)
    variants: list[tuple[tuple[float, str, int], tuple[str, ...]]] = field(default_factory=list)
    prune_ratio: float = 0.5
    lowrank_keep: float = 0.6
    finetune_epochs: int = 8
    subset: tuple[int, int] | None = None              # (train, eval) images, for smoke runs
    timing_sessions: int = 4
    timing_rounds: int = 5
    timing_calls: int = 10
    train_threads: int = 1

    def arch_for(self, data: ImageData) -> ArchConfig:
        return ArchConfig(in_channels=data.in_channels, input_size=data.input_size, num_classes=data.num_classes,
                          **self.arch)

    def specs(self) -> list[VariantSpec]:
        return [VariantSpec(Branch(float(w), e, int(r)), tuple(ops)) for (w, e, r), ops in self.variants]


def full_recipe(seed: int = 0) -> Recipe:
    branches = {
        (1.0, FINAL, 24): [(), ("int8",), ("prune",), ("prune", "int8"), ("lowrank",)],
        (1.0, FINAL, 16): [(), ("int8",)],
        (0.75, FINAL, 24): [()],
        (0.75, FINAL, 16): [()],
        (0.5, FINAL, 24): [()],
        (0.5, FINAL, 16): [()],
        (1.0, "e3", 24): [()],
        (1.0, "e3", 16): [(), ("int8",), ("prune",)],
        (0.75, "e3", 16): [()],
        (0.5, "e3", 8): [()],
        (1.0, "e2", 24): [()],
        (1.0, "e2", 16): [(), ("int8",)],
        (0.5, "e2", 16): [()],
        (0.5, "e2", 8): [()],
        (0.5, "e1", 16): [()],
        (0.25, "e1", 16): [()],
        (0.25, "e1", 8): [(), ("int8",)],
    }
    return Recipe(name="full", arch={"resolutions": (8, 16, 24)}, train=TrainConfig(epochs=20, seed=seed),
                  variants=[(b, ops) for b, opss in branches.items() for ops in opss])


def quick_recipe(seed: int = 0) -> Recipe:
    """A tiny network and a few images: exercises every code path in seconds, numbers meaningless."""
    arch = {"stem_channels": 8,
            "stages": ((1, 8, 1, 1), (2, 12, 1, 2), (2, 16, 1, 2), (2, 24, 1, 2), (2, 32, 1, 1), (2, 48, 1, 2),
                       (2, 64, 1, 1)),
            "exits": (("e1", 1, 16), ("e2", 2, 16), ("e3", 4, 32), (FINAL, 6, 64)),
            "widths": (0.5, 1.0), "resolutions": (8, 16)}
    variants = [((1.0, FINAL, 16), ()), ((1.0, FINAL, 16), ("int8",)), ((1.0, FINAL, 16), ("prune",)),
                ((1.0, FINAL, 16), ("lowrank",)), ((0.5, "e1", 8), ()), ((1.0, "e2", 8), ("prune", "int8"))]
    return Recipe(name="quick", arch=arch, train=TrainConfig(epochs=1, seed=seed), variants=variants,
                  finetune_epochs=1, subset=(160, 80), timing_sessions=1, timing_rounds=2, timing_calls=3)


# --------------------------------------------------------------------------- cache

def cache_root() -> Path:
    env = os.environ.get("ADASCALE_RL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "adascale-rl" / "elastic"


def cache_key(arch: ArchConfig, train: TrainConfig, data: ImageData) -> str:
    doc = {"v": CACHE_VERSION, "arch": arch.to_json(), "train": train.to_json(), "data": data.fingerprint()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def trained_supernet(arch: ArchConfig, data: ImageData, cfg: TrainConfig, *, progress: bool = True,
                     threads: int = 1, log=print, on_epoch=None) -> tuple[ElasticNet, TrainLog, Path]:
    """Load the trained supernet from the cache, or train it jointly and cache it."""
    folder = cache_root() / cache_key(arch, cfg, data)
    weights, meta = folder / "supernet.pt", folder / "train.json"
    torch.manual_seed(cfg.seed)
    net = ElasticNet(arch)
    if weights.exists() and meta.exists():
        net.load_state_dict(torch.load(weights, weights_only=True))
        log(f"loaded the trained elastic model from {folder}")
        return net.eval(), TrainLog(**json.loads(meta.read_text())), folder
    log(f"training the elastic model jointly ({cfg.epochs} epochs, {threads} thread(s)); cache: {folder}")
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tlog = train_joint(net, data, cfg, progress=progress, on_epoch=on_epoch)
    finally:
        torch.set_num_threads(prev)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(".tmp")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, weights)
    meta.write_text(json.dumps(tlog.to_json(), indent=1))
    return net.eval(), tlog, folder


# --------------------------------------------------------------------------- building

@dataclass
class Built:
    spec: VariantSpec
    float_model: nn.Module      # what the MACs are counted on (int8: its float model before conversion)
    deploy: nn.Module           # the standalone module to run
    macs: int
    params: int
    accuracy: float
    train_macs: float = 0.0     # BN calibration + fine-tuning spent on this variant


def build_variants(supernet: ElasticNet, data: ImageData, recipe: Recipe, *, progress=None,
                   threads: int = 1) -> list[Built]:
    """Derive every variant of ``recipe`` from the trained supernet (deterministic given the seed)."""
    example = data.x_train[:1]
    calib = data.x_train[:256]
    seed = recipe.train.seed
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    statics: dict[Branch, tuple[nn.Module, float]] = {}
    compressed: dict[tuple[Branch, str], tuple[nn.Module, float]] = {}
    out: list[Built] = []
    try:
        for spec in recipe.specs():
            b = spec.branch
            if b not in statics:
                torch.manual_seed(seed)
                net = extract_branch(supernet, b)
                statics[b] = (net, calibrate_bn(net, data.x_train))
            static, cost = statics[b]
            base, base_fused = static, None
            structural = [o for o in spec.ops if o != "int8"]
            if len(structural) > 1:
                raise ValueError(f"variant {spec.id}: at most one of prune/lowrank per variant")
            if structural:
                key = (b, structural[0])
                if key not in compressed:
                    torch.manual_seed(seed)
                    if structural[0] == "prune":
                        m = prune_channels(static, example, recipe.prune_ratio)
                    elif structural[0] == "lowrank":
                        m = low_rank(static, recipe.lowrank_keep)
                    else:
                        raise ValueError(f"variant {spec.id}: unknown operator {structural[0]!r}")
                    ft = finetune(m, static, data, epochs=recipe.finetune_epochs, seed=seed)
                    compressed[key] = (m, ft.macs)
                base, ft_macs = compressed[key]
                cost += ft_macs
            base_fused = fuse_bn(base)
            deploy = quantize_int8(base, calib) if "int8" in spec.ops else base_fused
            acc = accuracy(deploy, data.x_test, data.y_test)
            out.append(Built(spec, base_fused, deploy, count_macs(base_fused, example), count_params(base_fused), acc,
                             cost))
            if progress is not None:
                progress(1)
    finally:
        torch.set_num_threads(prev)
    return out


def _profiled(catalog):
    """(catalog, its 'elastic' entry, the recipe and the data it was profiled with)."""
    from adascale_rl.device.catalog import Catalog, load_catalog
    from adascale_rl.elastic.data import load_data

    cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    meta = cat.extra.get("elastic")
    if not isinstance(meta, dict):
        raise ValueError(f"catalog {cat.name} was not written by adascale-rl profile (no 'elastic' entry): the "
                         f"real model runs on a profiled environment (the shipped Local-Digits, or the one "
                         f"adascale-rl profile writes for this machine)")
    recipe = quick_recipe(meta["seed"]) if meta.get("recipe") == "quick" else full_recipe(meta["seed"])
    data = load_data(meta["data"], meta["seed"])
    if recipe.subset:
        data = data.subset(*recipe.subset)
    return cat, meta, recipe, data


def catalog_data(catalog) -> "ImageData":
    """The data a catalog written by ``adascale-rl profile`` was trained and measured on (its test split holds
    the labelled inputs the live loop serves)."""
    return _profiled(catalog)[3]


def variant_files(catalog) -> dict[str, Path]:
    """The cached TorchScript file of every variant of a catalog written by ``adascale-rl profile``.

    ``catalog`` is an :class:`adascale_rl.device.catalog.Catalog` (or a path to one). Load a
    variant with ``torch.jit.load(path)``; it takes the data set's native images (N x C x H x W,
    standardised as in :mod:`adascale_rl.elastic.data`) and returns logits. Raises
    ``FileNotFoundError`` naming the command that rebuilds them when the cache lacks them
    (another machine, or a cleared cache).
    """
    cat, meta, recipe, data = _profiled(catalog)
    folder = cache_root() / cache_key(recipe.arch_for(data), recipe.train, data) / "variants"
    files = {vid: folder / f"{vid}.pt" for vid in cat.ids}
    missing = [vid for vid, f in files.items() if not f.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} variant file(s) of catalog {cat.name} are not in {folder} (e.g. {missing[0]}); rebuild them "
            f"with: adascale-rl profile --data {meta['data']} --seed {meta['seed']}"
            f"{' --quick' if meta.get('recipe') == 'quick' else ''} --out <a scratch folder> (it caches them here)")
    return files
