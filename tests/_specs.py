"""Copies of a shipped environment spec with a changed device preset, as adascale-rl calibrate writes them.

A plain module (not conftest.py), as tests/_procs.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from adascale_rl import paths
from adascale_rl.environment.spec import VERSION, find_spec


def copy_of_spec(folder: Path, env: str = "Local-Digits", stem: str | None = None, **device) -> Path:
    """``env``'s spec copied into ``folder`` (as ``<stem>.yaml``: the id follows the file name) with its device
    preset copied into ``folder/devices/`` and ``device``'s values set there; the catalog and traces the same
    files as the original's."""
    spec = find_spec(env)
    stem = stem or spec.path.stem
    doc = yaml.safe_load(open(spec.path))
    copy_of_device(folder / "devices", spec.device, **device)
    doc.update(id=f"AdaScale/{stem}-v{VERSION}", device=f"devices/{spec.device}.yaml",
               catalog=str(spec.catalog_path()), dataset=str(spec.dataset_path()))
    (folder / f"{stem}.yaml").write_text(yaml.safe_dump(doc))
    return folder / f"{stem}.yaml"


def copy_of_device(folder: Path, name: str, **values) -> Path:
    """The shipped preset ``name`` copied into ``folder/<name>.yaml`` with ``values`` set (each with a source)."""
    dev = yaml.safe_load(open(paths.envs_dir() / "devices" / f"{name}.yaml"))
    for k, v in values.items():
        dev[k] = {"value": v, "source": "changed by the test"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(dev))
    return folder / f"{name}.yaml"
