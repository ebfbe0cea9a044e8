"""Environment specs: ``envs/<Name>.yaml`` declares one ``AdaScale/<Name>-v4`` environment.

The id is the file's name with the environment version: ``envs/Rpi4-Vision.yaml`` is
``AdaScale/Rpi4-Vision-v4``, so the registry can list every environment without parsing
the files, and a broken file breaks only its own environment.

::

    id: AdaScale/Rpi4-Vision-v4
    description: one line
    device: rpi4                 # envs/devices/<device>.yaml, or a .yaml path (relative: to this file)
    catalog: rpi4                # envs/catalogs/<catalog>.json, or a .json path (relative: to this file)
    dataset: rpi4-sim-v2         # a shipped traces/<dataset>/, or a path (relative: to this file)
    workload: rpi4-vision        # optional: the app workload (traces without app columns, e.g. recordings, get its modes)
    reward: balanced             # a preset name, or a mapping of weights
    period_s: 1.0                # decision interval
    max_episode_steps: 300
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adascale_rl import paths
from adascale_rl._files import read_data

#: the version of the environments' dynamics; it goes up whenever they change (Gymnasium's convention)
VERSION = 4
_KEYS = {"id", "description", "device", "catalog", "dataset", "workload", "reward", "period_s", "max_episode_steps"}


class SpecError(ValueError):
    """An environment spec that cannot be used; names the file and key."""


@dataclass(frozen=True)
class EnvSpec:
    id: str
    description: str
    device: str
    catalog: str
    dataset: str
    reward: Any = "balanced"
    period_s: float = 1.0
    max_episode_steps: int = 300
    workload: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """``Rpi4-Vision`` for ``AdaScale/Rpi4-Vision-v4``."""
        return env_name(self.id)

    @property
    def file_name(self) -> str:
        """The spec file's name (``Rpi4-Vision.yaml``): a copy of the spec must bear it, its id says so."""
        return self.path.name if self.path is not None else f"{self.name}.yaml"

    def catalog_path(self) -> Path:
        p = Path(self.catalog)
        if p.suffix == ".json" and p.exists():
            return p
        return paths.envs_dir() / "catalogs" / f"{self.catalog}.json"

    def dataset_path(self) -> Path:
        """The trace dataset: an absolute path; else, for a spec read from a file, a folder
        relative to that file, then a shipped dataset of that name. The working directory
        is not consulted for a spec file: a folder there that happens to bear a shipped
        dataset's name (an old ``synth --out rpi4-sim-v2``) must not replace it."""
        p = Path(self.dataset).expanduser()
        if p.is_absolute() or self.path is None:
            return paths.resolve(p, "traces")
        for candidate in (self.path.parent / p, paths.data_root() / "traces" / p):
            if candidate.exists():
                return candidate.resolve()
        raise FileNotFoundError(f"{self.path}: dataset {self.dataset!r} is neither next to the spec "
                                f"({self.path.parent / p}) nor a shipped dataset ({paths.data_root() / 'traces'})")


def _beside(spec_file: Path, ref: str, suffixes: tuple[str, ...]) -> str:
    """A device or catalog named by a relative file path, resolved against the spec file's folder
    (so a spec written with its files, e.g. by ``adascale-rl profile``, works from any folder);
    a shipped name, an absolute path, or a path that is not there is left as written."""
    p = Path(ref).expanduser()
    if p.suffix in suffixes and not p.is_absolute() and (spec_file.parent / p).is_file():
        return str((spec_file.parent / p).resolve())
    return ref


def load_spec(path: str | os.PathLike) -> EnvSpec:
    path = Path(path)
    doc = read_data(path, SpecError)
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: must be a YAML mapping")
    unknown = set(doc) - _KEYS
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    for key in ("id", "device", "catalog", "dataset"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise SpecError(f"{path}: {key!r} is required and must be a string")
    if doc["id"] != id_for(path):
        raise SpecError(f"{path}: id {doc['id']!r} must be {id_for(path)!r} (AdaScale/<file name>-v{VERSION}; "
                        f"the environments' dynamics are at version {VERSION})")
    period = doc.get("period_s", 1.0)
    steps = doc.get("max_episode_steps", 300)
    if not isinstance(period, (int, float)) or period <= 0:
        raise SpecError(f"{path}: period_s must be a positive number")
    if not isinstance(steps, int) or steps < 1:
        raise SpecError(f"{path}: max_episode_steps must be a positive integer")
    return EnvSpec(id=doc["id"], description=str(doc.get("description", "")),
                   device=_beside(path, doc["device"], (".yaml", ".yml")),
                   catalog=_beside(path, doc["catalog"], (".json",)), dataset=doc["dataset"], reward=doc.get("reward", "balanced"),
                   period_s=float(period), max_episode_steps=steps, workload=doc.get("workload"), path=path)


def id_for(path: str | os.PathLike) -> str:
    """The environment id a spec file declares: ``AdaScale/<file stem>-v<VERSION>``."""
    return f"AdaScale/{Path(path).stem}-v{VERSION}"


def spec_files() -> list[Path]:
    return sorted(paths.envs_dir().glob("*.yaml"))


def env_name(env_id: str) -> str:
    """``Rpi4-Vision`` for ``AdaScale/Rpi4-Vision-v4`` (or any version of it): the environment, whatever its dynamics'
    version."""
    return env_id.split("/", 1)[-1].rsplit("-v", 1)[0]


def env_version(env_id: str) -> int | None:
    """``4`` for ``AdaScale/Rpi4-Vision-v4``: the version of the dynamics an id names (None if it names none)."""
    tail = env_id.rsplit("-v", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def find_spec(name_or_id: str) -> EnvSpec:
    """A spec by file stem (``Rpi4-Vision``), by id (``AdaScale/Rpi4-Vision-v4``) or by path.

    Only the file asked for is parsed: a broken spec of another environment does not matter.
    An id of another version (``-v0``) is refused with the version that exists.
    """
    p = Path(name_or_id)
    if p.suffix in (".yaml", ".yml"):
        if p.exists():
            return load_spec(p)
        known = [f for f in spec_files() if f.stem == p.stem]
        hint = (f"the registered {id_for(known[0])} is --env {p.stem}" if known else
                "a spec YAML, or a registered name or id: adascale-rl envs list")
        raise SpecError(f"no such environment file: {name_or_id} ({hint})")
    files = spec_files()
    for f in files:
        if name_or_id in (f.stem, id_for(f)):
            return load_spec(f)
    for f in files:
        if name_or_id.startswith(f"AdaScale/{f.stem}-v"):
            raise SpecError(f"environment {name_or_id!r} does not exist in this version of adascale-rl: the "
                            f"dynamics changed and it is {id_for(f)!r} now")
    raise SpecError(f"unknown environment {name_or_id!r}; known: {', '.join(id_for(f) for f in files)}")
