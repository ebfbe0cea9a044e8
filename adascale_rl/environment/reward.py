"""The reward: effective accuracy against deadline misses, energy, memory, switches and OOM kills.

One formula, every term returned in ``info``::

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
from typing import Any, Mapping

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

    def terms(self, accuracy: float, on_time_frac: float, energy_frac: float, mem_frac: float,
              switched: bool, oom: bool) -> tuple[float, float, float, float, float, float]:
        """The signed contribution of each term (their sum is the reward)."""
        return (self.w_accuracy * accuracy * on_time_frac,
                -self.w_miss * (1.0 - on_time_frac),
                -self.w_energy * energy_frac,
                -self.w_mem * mem_frac,
                -self.w_switch * float(switched),
                -self.w_oom * float(oom))

    def to_dict(self) -> dict:
        return asdict(self)


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
