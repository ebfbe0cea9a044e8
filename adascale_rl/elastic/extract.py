"""From the supernet to standalone modules: weight slicing, BN folding, operation counts."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from adascale_rl.elastic.network import ArchConfig, Branch, ElasticNet, SlimConv2d, StaticNet, SwitchableBN, build_static


def _front_slice(src: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return src[tuple(slice(0, s) for s in shape)]


@torch.no_grad()
def extract_branch(supernet: ElasticNet, branch: Branch) -> StaticNet:
    """A plain :class:`StaticNet` for ``branch`` holding copies of the supernet's sliced weights
    and the branch width's own BatchNorm parameters and statistics."""
    arch: ArchConfig = supernet.arch
    wi = arch.widths.index(branch.width)
    net = build_static(arch, branch)
    for name, mod in net.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            src = supernet.get_submodule(name)
            mod.weight.copy_(_front_slice(src.weight, mod.weight.shape))
            if mod.bias is not None:
                mod.bias.copy_(_front_slice(src.bias, mod.bias.shape))
        elif isinstance(mod, nn.BatchNorm2d):
            src = supernet.get_submodule(name)
            assert isinstance(src, SwitchableBN), name
            bn = src.bns[wi]
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(mod, attr).copy_(getattr(bn, attr))
            mod.num_batches_tracked.copy_(bn.num_batches_tracked)
    return net.eval()


@torch.no_grad()
def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every Conv2d -> BatchNorm2d pair (adjacent in a Sequential) into the convolution.

    Returns a copy in eval mode; inference arithmetic is unchanged up to rounding, and the
    BN layers become ``nn.Identity``.
    """
    model = copy.deepcopy(model).eval()
    for mod in model.modules():
        if isinstance(mod, nn.Sequential):
            keys = list(mod._modules.keys())
            for a, b in zip(keys, keys[1:]):
                conv, bn = mod._modules[a], mod._modules[b]
                if type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d):
                    mod._modules[a] = fuse_conv_bn_eval(conv, bn)
                    mod._modules[b] = nn.Identity()
    return model


# --------------------------------------------------------------------------- counting

def count_params(model: nn.Module) -> int:
    """Parameters, including those packed inside quantized modules."""
    n = sum(p.numel() for p in model.parameters())
    if n:
        return n
    total = 0
    for mod in model.modules():  # quantized modules keep packed weights, not parameters
        w = getattr(mod, "weight", None)
        if callable(w):
            try:
                total += w().numel()
            except Exception:
                pass
        elif isinstance(w, torch.Tensor):
            total += w.numel()
    return total


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (convolutions and linear layers).

    Works on slimmable layers (counts only the active slice) and on plain float modules.
    Quantized models: count their float model before conversion (same arithmetic in int8).
    """
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        if isinstance(m, SlimConv2d):
            cin = 1 if m.depthwise else m.in_list[m.width_idx]
        else:
            cin = m.in_channels // m.groups
        k = m.kernel_size[0] * m.kernel_size[1]
        total += out.numel() // out.shape[0] * cin * k

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * inp[0].shape[-1]

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(example[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total)


def supernet_pass_macs(supernet: ElasticNet, width: float, resolution: int, example: torch.Tensor) -> int:
    """MACs of one supernet pass at (width, resolution) that evaluates every exit."""
    supernet.set_width(width)
    return count_macs(_AllExits(supernet, width, resolution), example)


class _AllExits(nn.Module):
    def __init__(self, net: ElasticNet, width: float, resolution: int):
        super().__init__()
        self.net, self.width, self.resolution = net, width, resolution

    def forward(self, x):
        return self.net(x, self.width, self.resolution)
