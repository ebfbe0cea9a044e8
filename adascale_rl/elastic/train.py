"""Training: the joint ("self-evolving") run of all branches, BN calibration, fine-tuning, evaluation.

Joint training uses the sandwich rule with in-place distillation (Yu & Huang, "Universally
slimmable networks", 2019): every step runs the largest branch (width 1, top resolution),
the smallest (lowest width, lowest resolution) and ``n_random`` random (width, resolution)
pairs. Each pass evaluates *every* exit, so one pass trains four branches. The largest
pass learns from the labels (cross-entropy with label smoothing on every exit); all the
other outputs learn half from the labels and half from the largest pass's final logits
(KL divergence, detached teacher). Gradients of all passes accumulate into the shared weights, then one optimizer
step.

Cheaper-teacher options (off by default; measured in docs/BENCHMARKS.md, "Training cost"):
``teacher_res_cycle`` runs the largest pass at the given resolutions step by step (e.g.
``(24, 16)`` alternates) and ``teacher_top_epochs`` restores the top resolution for the
last epochs.

Every training function counts its arithmetic: ``macs`` = multiply-accumulates spent,
with a backward pass costed at twice its forward (the usual 1:2 convention), so training
costs can be compared without wall-clock noise.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from adascale_rl.elastic.data import ImageData
from adascale_rl.elastic.extract import count_macs, supernet_pass_macs
from adascale_rl.elastic.network import FINAL, ElasticNet

BACKWARD_FACTOR = 2.0  # backward MACs per forward MAC


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    n_random: int = 1              # sandwich: largest + smallest + n_random random branches per step
    kd_temperature: float = 1.0
    kd_weight: float = 0.5         # sub-branch loss = (1 - kd_weight) CE(labels) + kd_weight KD(largest)
    augment_shift: float = 0.125   # random translation, as a fraction of the image side
    seed: int = 0
    teacher_res_cycle: tuple[int, ...] = ()       # the largest pass's resolution, step by step (empty: always the top)
    teacher_top_epochs: int = 0                   # the last N epochs run the largest pass at the top resolution

    def to_json(self) -> dict:
        """The settings; the later-added ones only when they differ from their defaults, so
        configurations from before them keep their cache keys."""
        d = asdict(self)
        for k in ("teacher_res_cycle", "teacher_top_epochs"):
            if not d[k]:
                del d[k]
            elif isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d


@dataclass
class TrainLog:
    steps: int = 0
    macs: float = 0.0
    wall_s: float = 0.0
    epochs: int = 0
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _augment(x: torch.Tensor, shift: float, gen: torch.Generator) -> torch.Tensor:
    """Random per-image translation by up to ``shift`` of the side (bilinear, zero padding)."""
    if shift <= 0:
        return x
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = (torch.rand(n, 2, generator=gen) * 2 - 1) * 2 * shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def _optimizer(params, cfg: TrainConfig, total_steps: int):
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, total_steps // 30)

    def lam(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lam)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


@torch.no_grad()
def accuracy(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 256) -> float:
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(y))


def supernet_accuracy(net: ElasticNet, width: float, exit: str, resolution: int, x, y) -> float:
    net.eval()
    return accuracy(lambda b: net(b, width, resolution, last_exit=exit)[exit], x, y)


def train_joint(net: ElasticNet, data: ImageData, cfg: TrainConfig, *, progress: bool = True,
                on_epoch: Callable[[int, ElasticNet], dict] | None = None) -> TrainLog:
    """Train every branch of ``net`` together (sandwich rule + in-place distillation)."""
    from tqdm.auto import tqdm

    arch = net.arch
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(data.y_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    opt, sched = _optimizer(net.parameters(), cfg, cfg.epochs * steps_per_epoch)
    example = data.x_train[:1]
    pass_macs = {(w, r): supernet_pass_macs(net, w, r, example) for w in arch.widths for r in arch.resolutions}
    big = (arch.widths[-1], arch.resolutions[-1])
    small = (arch.widths[0], arch.resolutions[0])
    log = TrainLog()
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="joint training", unit="step", disable=not progress,
               leave=False)
    for epoch in range(cfg.epochs):
        net.train()
        for idx in _batches(n, cfg.batch_size, gen):
            x = _augment(data.x_train[idx], cfg.augment_shift, gen)
            y = data.y_train[idx]
            opt.zero_grad(set_to_none=True)
            cycle = cfg.teacher_res_cycle if epoch < cfg.epochs - cfg.teacher_top_epochs else ()
            top = (big[0], cycle[log.steps % len(cycle)]) if cycle else big
            out = net(x, *top)
            loss = sum(F.cross_entropy(o, y, label_smoothing=cfg.label_smoothing) for o in out.values()) / len(out)
            loss.backward()
            teacher = out[FINAL].detach()
            pairs = [small] + [(arch.widths[int(torch.randint(len(arch.widths), (1,), generator=gen))],
                                arch.resolutions[int(torch.randint(len(arch.resolutions), (1,), generator=gen))])
                               for _ in range(cfg.n_random)]
            for w, r in pairs:
                sub = net(x, w, r)
                sub_loss = sum((1 - cfg.kd_weight) * F.cross_entropy(o, y, label_smoothing=cfg.label_smoothing)
                               + cfg.kd_weight * kd_loss(o, teacher, cfg.kd_temperature) for o in sub.values())
                (sub_loss / len(sub)).backward()
            opt.step()
            sched.step()
            log.steps += 1
            log.macs += (1 + BACKWARD_FACTOR) * len(y) * sum(pass_macs[p] for p in [top] + pairs)
            bar.update(1)
        log.epochs = epoch + 1
        entry = {"epoch": epoch + 1, "steps": log.steps, "macs": log.macs, "wall_s": time.perf_counter() - t0}
        if on_epoch is not None:
            entry.update(on_epoch(epoch, net))
        log.history.append(entry)
        bar.set_postfix({k: v for k, v in entry.items() if k.startswith("acc")})
    bar.close()
    log.wall_s = time.perf_counter() - t0
    net.eval()
    return log


@torch.no_grad()
def calibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> float:
    """Re-estimate BatchNorm statistics of a branch on training images (exact averages).

    The supernet's per-width BN statistics were accumulated over all resolution rungs; a
    branch runs at one rung, so its statistics are recomputed for it (as US-Nets does).
    Returns the forward MACs spent.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return 0.0
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i:i + batch_size])
    for m in bns:
        m.momentum = 0.1
    model.eval()
    return float(count_macs(model, x[:1]) * len(x))


def finetune(student: nn.Module, teacher: nn.Module | None, data: ImageData, *, epochs: int, lr: float = 1e-3,
             seed: int = 0, shift: float = 0.125, batch_size: int = 32, progress: bool = False,
             desc: str = "fine-tune") -> TrainLog:
    """Short fine-tuning after a compression operator: CE plus KD from ``teacher`` (the
    uncompressed branch) when given."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    steps = epochs * math.ceil(n / batch_size)
    opt, sched = _optimizer(student.parameters(), TrainConfig(lr=lr, weight_decay=0.0), steps)
    s_macs = count_macs(student, data.x_train[:1])
    t_macs = count_macs(teacher, data.x_train[:1]) if teacher is not None else 0
    if teacher is not None:
        teacher.eval()
    log = TrainLog()
    t0 = time.perf_counter()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        student.train()
        for idx in _batches(n, batch_size, gen):
            x = _augment(data.x_train[idx], shift, gen)
            y = data.y_train[idx]
            opt.zero_grad(set_to_none=True)
            out = student(x)
            loss = F.cross_entropy(out, y)
            if teacher is not None:
                with torch.no_grad():
                    t = teacher(x)
                loss = 0.5 * loss + 0.5 * kd_loss(out, t, 1.0)
            loss.backward()
            opt.step()
            sched.step()
            log.steps += 1
            log.macs += len(y) * ((1 + BACKWARD_FACTOR) * s_macs + t_macs)
        log.epochs += 1
    log.wall_s = time.perf_counter() - t0
    student.eval()
    return log


def train_single(model: nn.Module, data: ImageData, cfg: TrainConfig, *, target_val: float | None = None,
                 progress: bool = False, desc: str = "branch alone") -> TrainLog:
    """Train one static branch from scratch on labels alone (the "separate training" baseline).

    Records validation accuracy and cumulative MACs after every epoch; stops early once
    ``target_val`` is reached.
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(data.y_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    opt, sched = _optimizer(model.parameters(), cfg, cfg.epochs * steps_per_epoch)
    macs = count_macs(model, data.x_train[:1])
    log = TrainLog()
    t0 = time.perf_counter()
    for epoch in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False):
        model.train()
        for idx in _batches(n, cfg.batch_size, gen):
            x = _augment(data.x_train[idx], cfg.augment_shift, gen)
            y = data.y_train[idx]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing).backward()
            opt.step()
            sched.step()
            log.steps += 1
            log.macs += (1 + BACKWARD_FACTOR) * len(y) * macs
        model.eval()
        val = accuracy(model, data.x_val, data.y_val)
        log.epochs = epoch + 1
        log.history.append({"epoch": epoch + 1, "macs": log.macs, "val_acc": val,
                            "wall_s": time.perf_counter() - t0})
        if target_val is not None and val >= target_val:
            break
    log.wall_s = time.perf_counter() - t0
    return log
