"""Policies: the shared interface, heuristics, references and learned controllers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adascale_rl.policies.base import KINDS, BasePolicy, Policy
from adascale_rl.policies.heuristics import HEURISTICS
from adascale_rl.policies.oracle import REFERENCES

BUILTIN = {**HEURISTICS, **REFERENCES}


def make_policy(name_or_path: str, **params: Any) -> Policy:
    """A built-in policy by name (with parameters), or a trained controller from a run/agent folder."""
    if name_or_path in BUILTIN:
        policy = BUILTIN[name_or_path]()
        for k, v in params.items():
            if not hasattr(policy, k):
                raise ValueError(f"policy {name_or_path!r} has no parameter {k!r}")
            setattr(policy, k, v)
        return policy
    from adascale_rl import paths

    try:
        p = paths.resolve(name_or_path, "agents")  # a path, or a shipped agents/<env>/<algo>
    except FileNotFoundError:
        import difflib

        close = [k for k in BUILTIN if k.lower() == str(name_or_path).lower()] or \
            difflib.get_close_matches(str(name_or_path), list(BUILTIN), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown policy {name_or_path!r}{hint}: not one of {', '.join(BUILTIN)}, not a folder, "
                         f"and not a shipped agent (agents/<env-name>/ppo)") from None
    from adascale_rl.policies.ppo import load_policy

    return load_policy(p)


__all__ = ["KINDS", "BasePolicy", "Policy", "HEURISTICS", "REFERENCES", "BUILTIN", "make_policy"]
