"""The multi-branch ("self-evolving") network: a slimmable MobileNetV2 with early exits.

One set of weights serves every *branch* ``(width, exit, resolution)``:

- **width**: every layer's channel count is sliced from the front of the shared weight
  tensors (slimmable network, Yu et al. 2019); each width keeps its own BatchNorm
  statistics and affine parameters (switchable BN), because the activation statistics
  of a 0.25x slice differ from those of the full layer.
- **exit**: a classifier head after an intermediate stage (BranchyNet-style early exit);
  the later stages are simply not run.
- **resolution**: the input is resized to the branch's rung before the stem; the same
  convolution weights apply at every rung.

:class:`ElasticNet` is the supernet used for joint training. :func:`build_static` builds a
plain ``nn.Conv2d``/``nn.BatchNorm2d`` network with the same module names for one branch,
which :func:`adascale_rl.elastic.extract.extract_branch` fills with the sliced weights: that
is the standalone deployable module the compression operators start from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

FINAL = "final"


def make_divisible(v: float, divisor: int = 4, min_value: int = 4) -> int:
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # do not round down by more than 10 %
        new_v += divisor
    return new_v


@dataclass(frozen=True)
class Branch:
    """One path through the supernet: slice width, exit point and input resolution."""

    width: float
    exit: str
    resolution: int

    @property
    def id(self) -> str:
        return f"w{self.width:g}-{self.exit}-r{self.resolution}"

    def to_json(self) -> dict:
        return {"width": self.width, "exit": self.exit, "resolution": self.resolution}


@dataclass(frozen=True)
class ArchConfig:
    """Shape of the supernet. ``stages`` rows are MobileNetV2's (expand t, channels c, repeats n, stride s)."""

    in_channels: int = 1
    input_size: int = 8            # native image side of the data (the variants take native images)
    num_classes: int = 10
    stem_channels: int = 32
    stages: tuple[tuple[int, int, int, int], ...] = (
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    # exit name -> (index of the stage after which it sits, hidden channels of its head at width 1)
    exits: tuple[tuple[str, int, int], ...] = (("e1", 1, 96), ("e2", 2, 128), ("e3", 4, 256), (FINAL, 6, 1280))
    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    resolutions: tuple[int, ...] = (16, 24, 32)
    dropout: float = 0.1

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ArchConfig":
        d = dict(d)
        d["stages"] = tuple(tuple(s) for s in d["stages"])
        d["exits"] = tuple(tuple(e) for e in d["exits"])
        d["widths"] = tuple(d["widths"])
        d["resolutions"] = tuple(d["resolutions"])
        return cls(**d)

    @property
    def exit_names(self) -> tuple[str, ...]:
        return tuple(e[0] for e in self.exits)

    def exit_stage(self, name: str) -> int:
        for n, stage, _ in self.exits:
            if n == name:
                return stage
        raise KeyError(f"no exit {name!r}; exits are {', '.join(self.exit_names)}")

    def channels(self, c: int, widths: Sequence[float]) -> list[int]:
        return [make_divisible(c * w) for w in widths]

    def branches(self) -> list[Branch]:
        return [Branch(w, e, r) for w in self.widths for e in self.exit_names for r in self.resolutions]


# --------------------------------------------------------------------------- slimmable layers

class SlimConv2d(nn.Conv2d):
    """A convolution whose active in/out channels are the first ``in_list[i]``/``out_list[i]``."""

    def __init__(self, in_list: Sequence[int], out_list: Sequence[int], kernel_size: int, stride: int = 1,
                 depthwise: bool = False, bias: bool = False):
        groups = max(in_list) if depthwise else 1
        super().__init__(max(in_list), max(out_list), kernel_size, stride, kernel_size // 2, groups=groups, bias=bias)
        self.in_list, self.out_list, self.depthwise = list(in_list), list(out_list), depthwise
        self.width_idx = len(out_list) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin, cout = self.in_list[self.width_idx], self.out_list[self.width_idx]
        if self.depthwise:
            w, groups = self.weight[:cout], cout
        else:
            w, groups = self.weight[:cout, :cin], 1
        b = self.bias[:cout] if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, groups)


class SwitchableBN(nn.Module):
    """One BatchNorm per width: private statistics and affine parameters per slice."""

    def __init__(self, ch_list: Sequence[int]):
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in ch_list)
        self.width_idx = len(ch_list) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.width_idx](x)


class SlimLinear(nn.Linear):
    def __init__(self, in_list: Sequence[int], out_features: int):
        super().__init__(max(in_list), out_features)
        self.in_list = list(in_list)
        self.width_idx = len(in_list) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : self.in_list[self.width_idx]], self.bias)


class _Factory:
    """Builds either slimmable layers (supernet) or plain layers (one static branch)."""

    def __init__(self, slim: bool):
        self.slim = slim

    def conv(self, cin, cout, k, s=1, depthwise=False):
        if self.slim:
            return SlimConv2d(cin, cout, k, s, depthwise)
        return nn.Conv2d(cin[0], cout[0], k, s, k // 2, groups=cin[0] if depthwise else 1, bias=False)

    def bn(self, c):
        return SwitchableBN(c) if self.slim else nn.BatchNorm2d(c[0])

    def linear(self, cin, n):
        return SlimLinear(cin, n) if self.slim else nn.Linear(cin[0], n)


# --------------------------------------------------------------------------- blocks

class ConvBNReLU(nn.Sequential):
    def __init__(self, f: _Factory, cin, cout, k, s=1, depthwise=False, relu=True):
        layers = [f.conv(cin, cout, k, s, depthwise), f.bn(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=False))  # ReLU (not ReLU6): fuses and quantises cleanly
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, f: _Factory, cin, cout, stride: int, expand: int):
        super().__init__()
        hidden = [c * expand for c in cin]
        self.use_res = stride == 1 and list(cin) == list(cout)
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(f, cin, hidden, 1))
        layers += [ConvBNReLU(f, hidden, hidden, 3, stride, depthwise=True), ConvBNReLU(f, hidden, cout, 1, relu=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class ExitHead(nn.Module):
    def __init__(self, f: _Factory, cin, hidden, num_classes: int, dropout: float):
        super().__init__()
        self.conv = ConvBNReLU(f, cin, hidden, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = f.linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.conv(x)), 1)))


def _build_body(arch: ArchConfig, widths: Sequence[float], slim: bool, last_stage: int, exits: Sequence[str]):
    f = _Factory(slim)
    stem = arch.channels(arch.stem_channels, widths)
    stages = nn.ModuleList()
    stage_out = []
    cin = stem
    for t, c, n, s in arch.stages[: last_stage + 1]:
        cout = arch.channels(c, widths)
        blocks = [InvertedResidual(f, cin if i == 0 else cout, cout, s if i == 0 else 1, t) for i in range(n)]
        stages.append(nn.Sequential(*blocks))
        stage_out.append(cout)
        cin = cout
    heads = nn.ModuleDict()
    for name, stage, hidden in arch.exits:
        if name in exits:
            heads[name] = ExitHead(f, stage_out[stage], arch.channels(hidden, widths), arch.num_classes, arch.dropout)
    return ConvBNReLU(f, [arch.in_channels] * len(widths), stem, 3), stages, heads


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


class Resize(nn.Module):
    """Bilinear resize of the native image to the branch's resolution rung."""

    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = int(resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"


class ElasticNet(nn.Module):
    """The supernet. ``forward(x, width, resolution)`` returns ``{exit: logits}`` for every exit
    up to ``last_exit`` (all exits by default) from one pass at that width and resolution."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.stem, self.stages, self.exits = _build_body(arch, arch.widths, True, len(arch.stages) - 1,
                                                         arch.exit_names)

    def set_width(self, width: float) -> None:
        try:
            i = self.arch.widths.index(width)
        except ValueError:
            raise ValueError(f"width {width} is not one of the trained widths {self.arch.widths}") from None
        for m in self.modules():
            if hasattr(m, "width_idx"):
                m.width_idx = i

    def forward(self, x: torch.Tensor, width: float | None = None, resolution: int | None = None,
                last_exit: str = FINAL) -> dict[str, torch.Tensor]:
        if width is not None:
            self.set_width(width)
        x = resize(x, resolution or self.arch.resolutions[-1])
        x = self.stem(x)
        out: dict[str, torch.Tensor] = {}
        stop = self.arch.exit_stage(last_exit)
        by_stage = {stage: name for name, stage, _ in self.arch.exits}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in by_stage:
                out[by_stage[i]] = self.exits[by_stage[i]](x)
            if i == stop:
                break
        return out


class StaticNet(nn.Module):
    """One branch as a plain network: resize -> stem -> stages up to the exit -> that exit's head.

    Takes the dataset's native images (so the runtime feeds every variant the same frame)
    and returns logits. Module names match :class:`ElasticNet`'s, which is how weights are copied.
    """

    def __init__(self, arch: ArchConfig, branch: Branch):
        super().__init__()
        self.resolution = int(branch.resolution)
        self.resize = nn.Identity() if branch.resolution == arch.input_size else Resize(branch.resolution)
        self.stem, self.stages, self.exits = _build_body(arch, [branch.width], False, arch.exit_stage(branch.exit),
                                                         [branch.exit])
        self.exit_name = branch.exit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.resize(x))
        for stage in self.stages:
            x = stage(x)
        return self.exits[self.exit_name](x)


def build_static(arch: ArchConfig, branch: Branch) -> StaticNet:
    return StaticNet(arch, branch)
