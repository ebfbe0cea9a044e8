"""One interface for everything that chooses a variant.

A policy sees what a deployed controller would see — the observation and the
``info`` dict the environment returns (measured feedback, the action mask) —
plus, at the start of each episode, the environment it acts in (for its catalog,
device preset and observation encoder). Heuristics, learned controllers and the
non-deployable references (which additionally read the simulator through
``env``) share it, so the evaluation harness treats them alike.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

KINDS = ("heuristic", "reference", "learned")


@runtime_checkable
class Policy(Protocol):
    name: str
    kind: str  # one of KINDS

    def reset(self, env: Any) -> None:
        """Called after ``env.reset``; ``env`` is the unwrapped :class:`AdaScaleEnv`."""

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:
        """The action for the coming interval (0 = keep, i = switch to variant i - 1)."""


class BasePolicy:
    """Convenience base: keeps what a device knows about itself at reset.

    Heuristics (``kind == "heuristic"``) keep only the public parts of the
    environment: catalog, device preset, encoder, reward weights and period, and the
    performance model built from the catalog and preset (:attr:`table`).
    References keep the environment itself (they read the simulator).
    """

    name = "base"
    kind = "heuristic"

    def reset(self, env: Any) -> None:
        from adascale_rl.device.model import FRAME_SIGMA, VariantTable

        self.env = env if self.kind == "reference" else None
        self.catalog = env.catalog
        self.device = env.device
        self.encoder = env.encoder
        self.reward_fn = env.reward_fn
        self.reward = env.reward  # the weights with the device's normalisers
        self.period_s = env.period_s
        # the app's performance model: the catalog on this device (profiled numbers only)
        app = getattr(env, "app_device", env.device)
        if getattr(self, "_table_key", None) != (id(app), id(env.catalog)):
            self.table = VariantTable(app, env.catalog, FRAME_SIGMA)
            self.arrays = self.table.arrays()
            self._table_key = (id(app), id(env.catalog))

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
