"""The reward: effective accuracy against deadline misses, energy, memory, switches and OOM kills.

One formula, every term returned in ``info``, normalised in one place
(:class:`ScaledReward`, which the environment, the planners, the learned controller's
prior and the oracle all use)::

    r = w_accuracy * accuracy * on_time_frac          (effective accuracy)
      - w_miss     * miss_rate                        (1 - on_time_frac: late or dropped)
      - w_energy   * energy_j / (dyn_w_max * period)  (inference energy, as a share of the
                                                       device's full dynamic power budget)
      - w_mem      * mem_mb / mem_total_mb            (the app's peak memory)
      - w_switch   * switched
      - w_oom      * oom                              (killed by the low-memory killer)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, NamedTuple

TERMS = ("accuracy", "miss", "energy", "mem", "switch", "oom")


@dataclass(frozen=True)
class Reward:
    name: str = "balanced"
    w_accuracy: float = 1.0
    w_miss: float = 0.5
    w_energy: float = 0.1
    w_mem: float = 0.1
    w_switch: float = 0.02
    w_oom: float = 3.0

    def scaled(self, energy_budget_j: float, mem_total_mb: float) -> "ScaledReward":
        """These weights with a device's normalisers: energy over ``energy_budget_j`` (the device's
        dynamic power budget over one interval), memory over ``mem_total_mb``."""
        return ScaledReward(self, float(energy_budget_j), float(mem_total_mb))

    def to_dict(self) -> dict:
        return asdict(self)


class ScaledReward(NamedTuple):
    """The reward of one device and period: weights plus the normalisers, in one place."""

    weights: Reward
    energy_budget_j: float
    mem_total_mb: float

    def terms(self, accuracy, on_time_frac, energy_j, mem_mb, switched, oom) -> tuple:
        """The signed contribution of each term (their sum is the reward). Plain numbers or arrays
        (numpy or torch) alike; ``switched`` and ``oom`` may be booleans or 0/1."""
        w = self.weights
        return (w.w_accuracy * accuracy * on_time_frac,
                -w.w_miss * (1.0 - on_time_frac),
                -w.w_energy * energy_j / self.energy_budget_j,
                -w.w_mem * mem_mb / self.mem_total_mb,
                -w.w_switch * (switched * 1.0),
                -w.w_oom * (oom * 1.0))

    def total(self, accuracy, on_time_frac, energy_j, mem_mb, switched, oom):
        a, m, e, me, sw, o = self.terms(accuracy, on_time_frac, energy_j, mem_mb, switched, oom)
        return a + m + e + me + sw + o


PRESETS: dict[str, Reward] = {
    "balanced": Reward("balanced"),
    "latency-critical": Reward("latency-critical", w_miss=2.0, w_energy=0.1, w_mem=0.05),
    "energy-saver": Reward("energy-saver", w_miss=0.3, w_energy=1.2, w_mem=0.1),
    "accuracy-first": Reward("accuracy-first", w_accuracy=1.5, w_miss=0.3, w_energy=0.05, w_mem=0.02),
}


def make_reward(spec: Any) -> Reward:
    """A preset name, a :class:`Reward`, or a mapping ``{preset: ..., w_energy: ...}`` of overrides."""
    if isinstance(spec, Reward):
        return spec
    if isinstance(spec, str):
        try:
            return PRESETS[spec]
        except KeyError:
            raise ValueError(f"unknown reward preset {spec!r}; presets: {', '.join(PRESETS)}") from None
    if isinstance(spec, Mapping):
        spec = dict(spec)
        base = make_reward(spec.pop("preset", "balanced"))
        known = set(Reward.__dataclass_fields__) - {"name"}
        bad = set(spec) - known
        if bad:
            raise ValueError(f"unknown reward weight(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(known))}")
        return replace(base, name=f"{base.name}+custom", **{k: float(v) for k, v in spec.items()})
    raise ValueError(f"reward must be a preset name or a mapping of weights, not {spec!r}")
