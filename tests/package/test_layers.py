"""No module imports from a layer above it (function-level imports included).

The layers, bottom up: the package's own helpers (``_files``, ``paths``, ``_signals``, ``_cpus``); ``device``
(catalogs, presets, the performance model, the simulator's physics); ``context`` (schema, traces, the live
monitor, recording, synthesis, load); ``environment``; ``policies`` and ``elastic`` (side by side,
neither imports the other); ``runtime``; ``evaluation``; ``cli``. The one exception is the package's
``__init__``, which registers the environments when Gymnasium is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import adascale_rl

PACKAGE = Path(adascale_rl.__file__).resolve().parent
RANK = {"_files": 0, "paths": 0, "_signals": 0, "_cpus": 0, "device": 1, "context": 2, "environment": 3,
        "policies": 4, "elastic": 4,
        "runtime": 5, "evaluation": 6, "cli": 7}
ALLOWED = {("__init__", "environment")}  # the registration hook


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = ".".join(("adascale_rl", *path.relative_to(PACKAGE).with_suffix("").parts))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("adascale_rl")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here.split(".")[: -node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("adascale_rl"):
                names = [f"{mod}.{a.name}" for a in node.names] if mod == "adascale_rl" else [mod]
                out += [(node.lineno, n) for n in names]
    return out


def test_every_layer_is_known():
    found = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert found <= set(RANK), f"layers without a rank: {sorted(found - set(RANK))}"


def test_no_module_imports_from_a_layer_above_it():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        mine = "__init__" if rel.parts == ("__init__.py",) else rel.parts[0].removesuffix(".py")
        for line, target in _imports(path):
            theirs = _layer(target)
            if theirs == "__init__" or theirs == mine or (mine, theirs) in ALLOWED:
                continue
            if theirs not in RANK:
                continue  # a name imported from the package root (adascale_rl.__version__)
            if mine == "__init__" or RANK[theirs] > RANK[mine] or RANK[theirs] == RANK[mine]:
                bad.append(f"{rel}:{line} ({mine}) imports {target} ({theirs})")
    assert not bad, "imports that run up (or across) the layers:\n" + "\n".join(bad)
