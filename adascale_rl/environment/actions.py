"""The action convention of every AdaScale environment, defined once.

``Discrete(1 + n_variants)``: action :data:`KEEP` (0) keeps the loaded variant, action
``i`` (1..n) asks for catalog variant ``i - 1`` (asking for the variant already loaded is
a keep).
"""

from __future__ import annotations

KEEP = 0


def action_for(target: int, loaded: int) -> int:
    """The action that runs ``target`` next interval when ``loaded`` is loaded (keep when they are the same)."""
    return KEEP if target == loaded else target + 1


def target_of(action: int, loaded: int) -> int:
    """The variant an action runs next interval."""
    return loaded if action == KEEP else action - 1
