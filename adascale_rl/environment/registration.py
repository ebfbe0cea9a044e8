"""Registration of the ``AdaScale/<Name>-v4`` environments declared by ``envs/*.yaml``.

Each id has the single environment (``gymnasium.make``) and the native vector environment
(``gymnasium.make_vec(id, num_envs=N)``, :mod:`adascale_rl.environment.vector`).

Registering reads each spec file only to learn its episode length; a file that cannot be
read still registers its id (taken from the file name), and making that environment
raises the spec's error naming the file, so one broken file breaks only its own
environment (and never ``adascale-rl --help``). :func:`register_spec` registers one spec file of your
own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from adascale_rl.environment.spec import EnvSpec, SpecError, id_for, load_spec, spec_files

ENTRY_POINT = "adascale_rl.environment.env:AdaScaleEnv"
#: ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` (the native vector environment)
VECTOR_ENTRY_POINT = "adascale_rl.environment.vector:AdaScaleVectorEnv"


def register_file(path: str | Path) -> str:
    """Register the environment a spec file declares (its id: ``AdaScale/<file stem>-v4``); returns the id.

    Safe to call twice. A spec that cannot be read is registered all the same: making it
    raises the spec's error.
    """
    import gymnasium as gym  # here, not at the top: importing this module must not import Gymnasium (__init__'s hook)

    path = Path(path).resolve()
    env_id = id_for(path)
    if env_id in gym.registry:
        return env_id
    try:
        steps: int | None = load_spec(path).max_episode_steps
    except SpecError:
        steps = None  # reported when the environment is made
    gym.register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, max_episode_steps=steps,
                 kwargs={"spec": str(path)})
    return env_id


def register_all() -> list[str]:
    """Register every spec in ``envs/``; returns the ids. Safe to call twice."""
    return [register_file(f) for f in spec_files()]


def register_spec(path: str | os.PathLike) -> str:
    """Register the environment of one spec file of your own (``adascale-rl profile`` writes
    one) and return its id, for ``gymnasium.make``::

        env = gym.make(register_spec("adascale-profile/MyHost-Digits.yaml"))

    Registering the same file again returns the id; another file with an id already
    registered (a shipped one, say) is a :class:`SpecError`: give the spec another ``id``.
    """
    import gymnasium as gym

    p = Path(path).expanduser().resolve()
    spec = load_spec(p)
    known = gym.registry.get(spec.id)
    if known is not None:
        if known.kwargs.get("spec") == str(p):
            return spec.id
        raise SpecError(f"{p}: id {spec.id} is already registered (for {known.kwargs.get('spec')}); "
                        f"give this spec another id")
    gym.register(id=spec.id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                 max_episode_steps=spec.max_episode_steps, kwargs={"spec": str(p)})
    return spec.id


def registered_specs() -> list[EnvSpec]:
    """The readable specs of ``envs/`` (a broken file is left out; ``envs list`` names it)."""
    out = []
    for f in spec_files():
        try:
            out.append(load_spec(f))
        except SpecError:
            continue
    return out


def list_command(args) -> int:
    from adascale_rl.device.catalog import load_catalog

    rows = [("id", "device", "catalog", "variants", "dataset", "reward", "period", "steps")]
    broken = []
    for f in spec_files():
        try:
            s = load_spec(f)
        except SpecError as exc:
            broken.append(str(exc))
            continue
        try:
            n = str(len(load_catalog(s.catalog_path())))
        except Exception as exc:  # a broken catalog should not hide the others
            n = f"error: {exc}"
        reward = s.reward if isinstance(s.reward, str) else "custom"
        rows.append((s.id, s.device, s.catalog, n, s.dataset, reward, f"{s.period_s:g}s", str(s.max_episode_steps)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("\nAn environment of your own (adascale-rl profile writes one) is not listed here: pass its spec file,\n"
          "--env path/to/Name.yaml (bench, evaluate, train), or register_spec(path) for gymnasium.make.")
    for msg in broken:
        print(f"broken: {msg}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(list_command(None))
