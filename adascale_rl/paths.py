"""Where the shipped data lives: ``envs/``, ``agents/`` and ``traces/``.

In a source checkout (editable install or running from the repo) they sit next to
the package; in a wheel they are carried inside it as ``adascale_rl/_shipped/``.
``ADASCALE_RL_DATA`` overrides both (a folder holding the three).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_KINDS = ("envs", "agents", "traces")


@lru_cache(maxsize=None)
def data_root() -> Path:
    """The folder that holds ``envs/``, ``agents/`` and ``traces/``."""
    override = os.environ.get("ADASCALE_RL_DATA")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "envs").is_dir():
            raise FileNotFoundError(f"ADASCALE_RL_DATA={override} has no envs/ folder")
        return root
    for candidate in (_PACKAGE / "_shipped", _PACKAGE.parent):
        if (candidate / "envs").is_dir() and (candidate / "traces").is_dir():
            return candidate
    raise FileNotFoundError(
        "the shipped data (envs/, traces/) was not found next to the package or inside it; "
        "reinstall adascale-rl or set ADASCALE_RL_DATA"
    )


def envs_dir() -> Path:
    return data_root() / "envs"


def agents_dir() -> Path:
    return data_root() / "agents"


def traces_dir() -> Path:
    return data_root() / "traces"


def resolve(path: str | os.PathLike, kind: str) -> Path:
    """Resolve ``path`` as given, else relative to the shipped ``kind`` folder.

    ``resolve("rpi4-sim-v2", "traces")`` (or ``"traces/rpi4-sim-v2"``, as from the repository's root) finds
    the shipped dataset; an existing path on disk (a user's own data) always wins.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    p = Path(path).expanduser()
    if p.exists():
        return p.resolve()
    shipped = data_root() / kind / p
    if shipped.exists():
        return shipped
    if not p.is_absolute() and p.parts[:1] == (kind,) and (data_root() / p).exists():
        return data_root() / p  # "agents/Rpi4-Vision/ppo" as the README writes it, from any folder
    raise FileNotFoundError(f"{path}: no such file, and no shipped {kind[:-1]} of that name in {data_root() / kind}")


def shipped_folder_of(path: str | os.PathLike) -> Path | None:
    """The shipped folder (envs/, agents/, traces/ or the package's own) that ``path`` is or lies in, else None:
    commands that write files refuse those, whose files other environments and the tests read."""
    target = Path(path).expanduser().resolve()
    for folder in (envs_dir(), agents_dir(), traces_dir(), Path(__file__).resolve().parent):
        folder = folder.resolve()
        if target == folder or folder in target.parents:
            return folder
    return None
