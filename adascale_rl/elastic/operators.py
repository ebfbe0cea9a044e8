"""Compression operators: each takes a branch's standalone module and returns a new one.

- :func:`prune_channels`: structured channel pruning with Torch-Pruning's dependency graph
  (``MetaPruner`` + group L2 magnitude importance). Coupled channels (residual adds,
  depthwise convolutions, BN) are removed together, so the result is a smaller dense
  network, not a masked one. Needs fine-tuning afterwards.
- :func:`quantize_int8`: post-training static int8 quantisation in FX graph mode with the
  ``x86`` (fbgemm + oneDNN) backend: per-channel weights, per-tensor activations observed on
  calibration images; Conv-BN-ReLU fused first.
- :func:`low_rank`: truncated SVD of pointwise (1x1) convolutions and linear layers, each
  replaced by two thinner layers (in -> k -> out) when that saves arithmetic. Needs
  fine-tuning afterwards.

Early exit is not an operator here but part of the branch (the network is cut at the exit).
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn

from adascale_rl.elastic.extract import fuse_bn


def prune_channels(model: nn.Module, example: torch.Tensor, ratio: float = 0.5, round_to: int = 4) -> nn.Module:
    """Remove ``ratio`` of the prunable channel groups of every layer (dependency-aware).

    The classifier's output layer is kept whole. Returns a pruned deep copy (BN kept, so
    it can be fine-tuned; fold it with :func:`adascale_rl.elastic.extract.fuse_bn` to deploy).
    """
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    ignored = [m for m in model.modules() if isinstance(m, nn.Linear)]  # the class logits keep all classes
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        ignored_layers=ignored, round_to=round_to, global_pruning=False)
    pruner.step()
    return model


def quantize_int8(model: nn.Module, calib: torch.Tensor, backend: str = "x86", batch_size: int = 64) -> nn.Module:
    """Post-training static int8 quantisation (FX graph mode), calibrated on ``calib`` images."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = backend
    model = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        prepared = prepare_fx(model, get_default_qconfig_mapping(backend), (calib[:1],))
        with torch.no_grad():
            for i in range(0, len(calib), batch_size):
                prepared(calib[i:i + batch_size])
        q = convert_fx(prepared)
    q.eval()
    return q


class LowRankLinear(nn.Sequential):
    """``Linear(in, out)`` as ``Linear(in, k, bias=False) -> Linear(k, out)``."""


def _rank(cin: int, cout: int, keep: float) -> int:
    """Rank that keeps ``keep`` of the layer's MACs (break-even rank is cin*cout/(cin+cout))."""
    return min(cin, cout, max(1, int(math.floor(keep * cin * cout / (cin + cout)))))


@torch.no_grad()
def _factor(weight: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W (out x in) ~= B (out x k) @ A (k x in), singular values split evenly between A and B."""
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    root = s[:k].sqrt()
    return u[:, :k] * root, root[:, None] * vh[:k]


@torch.no_grad()
def low_rank(model: nn.Module, keep: float = 0.5, min_macs_per_pixel: int = 2048) -> nn.Module:
    """Factorise 1x1 convolutions (with ``cin*cout >= min_macs_per_pixel``) and linear layers
    into two layers of rank ``k`` holding ``keep`` of the original weights.

    BatchNorm is folded into the convolutions first (returned model has none). Small layers
    are left alone: splitting them would add a call for no saving.
    """
    model = fuse_bn(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.Conv2d) and child.kernel_size == (1, 1) and child.groups == 1
                    and child.in_channels * child.out_channels >= min_macs_per_pixel):
                cin, cout = child.in_channels, child.out_channels
                k = _rank(cin, cout, keep)
                b, a = _factor(child.weight[:, :, 0, 0], k)
                first = nn.Conv2d(cin, k, 1, bias=False)
                second = nn.Conv2d(k, cout, 1, bias=child.bias is not None)
                first.weight.copy_(a[:, :, None, None])
                second.weight.copy_(b[:, :, None, None])
                if child.bias is not None:
                    second.bias.copy_(child.bias)
                setattr(parent, name, nn.Sequential(first, second))
            elif isinstance(child, nn.Linear) and child.in_features * child.out_features >= min_macs_per_pixel:
                k = _rank(child.in_features, child.out_features, keep)
                b, a = _factor(child.weight, k)
                first = nn.Linear(child.in_features, k, bias=False)
                second = nn.Linear(k, child.out_features)
                first.weight.copy_(a)
                second.weight.copy_(b)
                second.bias.copy_(child.bias)
                setattr(parent, name, LowRankLinear(first, second))
    return model
