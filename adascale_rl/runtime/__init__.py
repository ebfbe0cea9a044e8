"""The exported controller on the device: :class:`Selector` (numpy, psutil; no torch, Stable-Baselines3 or
Gymnasium), the numpy forward, and the exporter (:mod:`adascale_rl.runtime.export`, training machine only)."""

from adascale_rl.runtime.selector import Selector

__all__ = ["Selector"]
