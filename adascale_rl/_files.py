"""Reading and writing the project's data files: errors that name the file, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def _umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(path: Path | None = None) -> int:
    """The permissions a new file gets from ``open()``: ``0o666`` minus the umask; or those of
    ``path`` when it exists (a file that is replaced keeps its mode). ``tempfile`` creates
    files 0600 and folders 0700, which other users and tools could then not read."""
    if path is not None and path.exists():
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``:
    readers see the old file or the new one, never half of one. The file gets the mode ``open()``
    would give it (or keeps its old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def command_line(fallback: str = "adascale-rl") -> str:
    """The command that is writing these files, as the user would type it (``adascale-rl ...``, not the
    interpreter's path to the CLI module), for the provenance lines of run configs and reports; ``fallback``
    when called from Python (no arguments)."""
    import shlex
    import sys

    args = sys.argv[1:]
    return shlex.join(["adascale-rl", *args]) if args else fallback
