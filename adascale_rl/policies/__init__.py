"""Policies: the shared interface, heuristics, references and learned controllers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from adascale_rl.policies.base import KINDS, BasePolicy, Policy
from adascale_rl.policies.heuristics import HEURISTICS
from adascale_rl.policies.oracle import REFERENCES

BUILTIN = {**HEURISTICS, **REFERENCES}


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the name in ``known`` a mistyped ``name`` most likely meant (the same name in
    another case first), else ``""``: the hint every "unknown policy/controller" message carries."""
    import difflib

    same = [k for k in known if k.lower() == str(name).lower()]
    close = same or difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        raise ValueError(f"unknown policy {name_or_path!r}{did_you_mean(name_or_path, BUILTIN)}: not one of "
                         f"{', '.join(BUILTIN)}, not a folder, "
                         f"and not a shipped agent (agents/<env-name>/ppo)") from None
    from adascale_rl.policies.ppo import load_policy

    return load_policy(p)


__all__ = ["KINDS", "BasePolicy", "Policy", "HEURISTICS", "REFERENCES", "BUILTIN", "make_policy"]
