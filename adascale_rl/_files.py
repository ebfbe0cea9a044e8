"""Reading the project's data files, with errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml


def read_data(path: str | os.PathLike, error: type[Exception]) -> Any:
    """Parse a YAML (``.yaml``/``.yml``) or JSON file; any problem is ``error`` naming the file in one sentence."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise error(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
