"""Registration of ``AdaScale/<Name>-v0`` environments from ``envs/*.yaml``, and of one spec
file of your own (:func:`register_spec`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import gymnasium as gym

from adascale_rl.environment.spec import EnvSpec, SpecError, load_spec, spec_files

ENTRY_POINT = "adascale_rl.environment.env:AdaScaleEnv"


def register_all() -> list[str]:
    """Register every spec in ``envs/``; returns the ids. Safe to call twice."""
    ids = []
    for f in spec_files():
        spec = load_spec(f)
        if spec.id not in gym.registry:
            gym.register(id=spec.id, entry_point=ENTRY_POINT, max_episode_steps=spec.max_episode_steps,
                         kwargs={"spec": spec.path.stem})
        ids.append(spec.id)
    return ids


def register_spec(path: str | os.PathLike) -> str:
    """Register the environment of one spec file of your own (``adascale-rl profile`` writes
    one) and return its id, for ``gymnasium.make``::

        env = gym.make(register_spec("adascale-profile/MyHost-Digits.yaml"))

    Registering the same file again returns the id; another file with an id already
    registered (a shipped one, say) is a :class:`SpecError`: give the spec another ``id``.
    """
    p = Path(path).expanduser().resolve()
    spec = load_spec(p)
    known = gym.registry.get(spec.id)
    if known is not None:
        if known.kwargs.get("spec") == str(p):
            return spec.id
        raise SpecError(f"{p}: id {spec.id} is already registered (for {known.kwargs.get('spec')}); "
                        f"give this spec another id")
    gym.register(id=spec.id, entry_point=ENTRY_POINT, max_episode_steps=spec.max_episode_steps,
                 kwargs={"spec": str(p)})
    return spec.id


def registered_specs() -> list[EnvSpec]:
    return [load_spec(f) for f in spec_files()]


def list_command(args) -> int:
    from adascale_rl.device.catalog import load_catalog

    rows = [("id", "device", "catalog", "variants", "dataset", "reward", "period", "steps")]
    for s in registered_specs():
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
    return 0


if __name__ == "__main__":
    sys.exit(list_command(None))
