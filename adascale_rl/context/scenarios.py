"""Scenario, workload and dataset-recipe files for the synthesizer: load and validate.

Every number in ``envs/scenarios/*.yaml`` and ``envs/workloads/*.yaml`` is written
as ``{value: ..., source: "..."}`` (a published figure) or ``{value: ...,
derived: "..."}`` (how it was worked out, or that it is an assumption), as in the
device presets. A value is one of

* a number: a constant;
* ``[low, high]``: drawn uniformly (per trace or per event, as the key says);
* ``{lognormal: {median: m, sigma: s}}``, ``{pareto: {xm: x, alpha: a}}``,
  ``{exponential: {mean: m}}``: a distribution of durations (seconds).

Recipes (``envs/datasets/*.yaml``) may override scenario values per file with
bare values; the origin of an override is recorded as the recipe.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from adascale_rl import paths


class ScenarioError(ValueError):
    """A scenario, workload or recipe file that cannot be used; names the file and key."""


# --------------------------------------------------------------------------- values

@dataclass(frozen=True)
class Dist:
    """A constant, a uniform range or a duration distribution, with where it comes from."""

    kind: str                       # const | uniform | lognormal | pareto | exponential
    args: tuple[float, ...]
    origin: str = ""

    def sample(self, rng: np.random.Generator, size: int | None = None):
        k, a = self.kind, self.args
        if k == "const":
            return a[0] if size is None else np.full(size, a[0])
        if k == "uniform":
            return rng.uniform(a[0], a[1], size)
        if k == "lognormal":
            return a[0] * np.exp(a[1] * rng.standard_normal(size))
        if k == "pareto":  # classic Pareto: xm * (1 + Lomax(alpha))
            return a[0] * (1.0 + rng.pareto(a[1], size))
        if k == "exponential":
            return rng.exponential(a[0], size)
        raise AssertionError(k)

    @property
    def low(self) -> float:
        """The smallest value a draw can take."""
        return self.args[0] if self.kind in ("const", "uniform", "pareto") else 0.0

    @property
    def high(self) -> float:
        """The largest value a draw can take (inf for unbounded distributions)."""
        if self.kind == "const":
            return self.args[0]
        return self.args[1] if self.kind == "uniform" else math.inf

    @property
    def mean(self) -> float:
        k, a = self.kind, self.args
        if k == "const":
            return a[0]
        if k == "uniform":
            return (a[0] + a[1]) / 2
        if k == "lognormal":
            return a[0] * math.exp(a[1] ** 2 / 2)
        if k == "pareto":
            return a[0] * a[1] / (a[1] - 1) if a[1] > 1 else math.inf
        return a[0]


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_value(raw: Any, where: str, origin: str = "") -> Dist:
    """A bare value (number, [lo, hi] or distribution mapping) as a :class:`Dist`."""
    if _num(raw):
        return Dist("const", (float(raw),), origin)
    if isinstance(raw, list) and len(raw) == 2 and all(_num(x) for x in raw) and raw[0] <= raw[1]:
        return Dist("uniform", (float(raw[0]), float(raw[1])), origin)
    if isinstance(raw, dict) and len(raw) == 1:
        (kind, args), = raw.items()
        need = {"lognormal": ("median", "sigma"), "pareto": ("xm", "alpha"), "exponential": ("mean",)}.get(kind)
        if need and isinstance(args, dict) and set(args) == set(need) and all(_num(args[k]) and args[k] > 0
                                                                              for k in need):
            return Dist(kind, tuple(float(args[k]) for k in need), origin)
    raise ScenarioError(f"{where}: value {raw!r} must be a number, [low, high], or one of "
                        f"{{lognormal: {{median, sigma}}}}, {{pareto: {{xm, alpha}}}}, {{exponential: {{mean}}}}")


def parse_param(entry: Any, where: str) -> Dist:
    """``{value: ..., source|derived: "..."}`` as a :class:`Dist`; refuses a number without an origin."""
    origin = origin_of(entry, where)
    return parse_value(entry["value"], where, origin)


def origin_of(entry: Any, where: str) -> str:
    """The ``source: ...`` / ``derived: ...`` text of a parameter entry, checking its shape."""
    if not isinstance(entry, dict) or "value" not in entry:
        raise ScenarioError(f"{where} must be written as {{value: ..., source: ...}} or {{value: ..., derived: ...}}")
    origin = entry.get("source") or entry.get("derived")
    if not isinstance(origin, str) or not origin.strip():
        raise ScenarioError(f"{where} has no 'source' or 'derived' saying where the number comes from")
    extra = set(entry) - {"value", "source", "derived"}
    if extra:
        raise ScenarioError(f"{where} has unknown key {sorted(extra)[0]!r}")
    return ("source: " if entry.get("source") else "derived: ") + origin.strip()


# --------------------------------------------------------------------------- scenarios

# per section: key -> (kind, (low, high) bounds every possible draw must respect, required)
# kinds: "value" any Dist, "dur" a duration distribution (> 0), "levels" a list of fractions
_SECTIONS: dict[str, dict[str, tuple[str, tuple[float, float], bool]]] = {
    "cpu": {"base": ("value", (0, 1), True), "noise_sd": ("value", (0, 0.5), True),
            "noise_corr_s": ("value", (0.1, 1e5), True), "spikes_per_h": ("value", (0, 3600), False),
            "spike_cpu": ("value", (0, 1), False), "spike_s": ("dur", (0, 1e5), False)},
    "memory": {"os_frac": ("value", (0, 0.9), True), "noise_mb_sd": ("value", (0, 1e5), True),
               "noise_corr_s": ("value", (0.1, 1e5), True), "min_avail_mb": ("value", (0, 1e6), True)},
    "app_process": {"cpu": ("value", (0, 1), True), "cpu_jitter": ("value", (0, 3), True),
                    "mem_frac": ("value", (0, 0.9), True), "on_s": ("dur", (0, 1e6), True),
                    "off_s": ("dur", (0, 1e6), True), "start_on_p": ("value", (0, 1), True)},
    "pressure": {"per_h": ("value", (0, 3600), True), "first_after_s": ("dur", (0, 1e6), True),
                 "floor_mb": ("value", (0, 1e6), True), "ramp_s": ("dur", (0, 1e5), True),
                 "hold_s": ("dur", (0, 1e5), True), "release_s": ("dur", (0, 1e5), True),
                 "cpu": ("value", (0, 1), True)},
    "ambient": {"start_c": ("value", (-40, 85), True), "drift_sd_c": ("value", (0, 50), True),
                "drift_corr_s": ("value", (0.1, 1e6), True), "min_c": ("value", (-40, 85), True),
                "max_c": ("value", (-40, 85), True)},
    "leg": {"target_c": ("value", (-40, 85), True), "dwell_s": ("dur", (0, 1e6), True),
            "tau_s": ("value", (0.1, 1e5), True)},
    "clock": {"levels": ("levels", (0.05, 1), True), "thermal_onset_c": ("value", (-40, 85), True),
              "c_per_level": ("value", (0.1, 100), True), "hold_s": ("dur", (0, 1e5), True),
              "saver_per_h": ("value", (0, 3600), True), "saver_s": ("dur", (0, 1e6), True),
              "saver_level": ("value", (0.05, 1), True)},
    "battery": {"start_pct": ("value", (0, 100), False), "start_above_saver_pct": ("value", (-100, 100), False),
                "plugged_p": ("value", (0, 1), True), "other_w": ("value", (0, 100), True),
                "charge_w": ("value", (0, 200), True)},
    "app": {"dwell_scale": ("value", (0.01, 100), True)},
}


@dataclass
class Scenario:
    name: str
    description: str
    needs_battery: bool
    sections: dict[str, dict[str, Any]]      # section -> key -> Dist | list[float]
    apps: dict[str, dict[str, Dist]]
    legs: dict[str, dict[str, Dist]]
    leg_order: list[str]
    switch_modes: bool
    path: Path | None = None
    doc: dict = field(default_factory=dict, repr=False)

    def get(self, section: str, key: str, default=None):
        return self.sections.get(section, {}).get(key, default)


def _check_bounds(d: Dist, bounds: tuple[float, float], where: str, kind: str) -> None:
    lo, hi = bounds
    if kind == "dur":
        if d.low < 0 or (d.kind in ("const", "uniform") and d.high <= 0):
            raise ScenarioError(f"{where}: a duration must be positive")
        return
    if d.low < lo or d.high > hi:
        raise ScenarioError(f"{where}: every draw must lie in [{lo:g}, {hi:g}], but {d.kind} {list(d.args)} "
                            f"reaches [{d.low:g}, {d.high:g}]")


def _parse_section(doc: Any, spec: dict, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where} must be a mapping")
    unknown = set(doc) - set(spec)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(spec)}")
    out: dict[str, Any] = {}
    for key, (kind, bounds, required) in spec.items():
        if key not in doc:
            if required:
                raise ScenarioError(f"{where}: required key {key!r} is missing")
            continue
        w = f"{where}.{key}"
        if kind == "levels":
            entry = doc[key]
            origin_of(entry, w)
            v = entry["value"]
            if (not isinstance(v, list) or not v or not all(_num(x) and bounds[0] <= x <= bounds[1] for x in v)
                    or any(b >= a for a, b in zip(v, v[1:])) or v[0] != 1):
                raise ScenarioError(f"{w}: must be a descending list of clock fractions starting at 1")
            out[key] = [float(x) for x in v]
        else:
            d = parse_param(doc[key], w)
            _check_bounds(d, bounds, w, kind)
            out[key] = d
    return out


def parse_scenario(doc: Any, where: str = "scenario") -> Scenario:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: must be a YAML mapping")
    for key in ("name", "description"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ScenarioError(f"{where}: {key!r} must be a non-empty string")
    allowed = {"name", "description", "needs_battery", "switch_modes", "apps", "legs", "leg_order",
               *(s for s in _SECTIONS if s not in ("app_process", "leg"))}
    unknown = set(doc) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    sections = {}
    for s in ("cpu", "memory", "ambient", "battery"):
        if s not in doc:
            raise ScenarioError(f"{where}: required section {s!r} is missing")
    for s in ("cpu", "memory", "ambient", "battery", "pressure", "clock", "app"):
        if s in doc:
            sections[s] = _parse_section(doc[s], _SECTIONS[s], f"{where}: {s}")
    b = sections["battery"]
    if ("start_pct" in b) == ("start_above_saver_pct" in b):
        raise ScenarioError(f"{where}: battery needs exactly one of start_pct and start_above_saver_pct")
    apps = {}
    for name, a in (doc.get("apps") or {}).items():
        apps[str(name)] = _parse_section(a, _SECTIONS["app_process"], f"{where}: apps.{name}")
    legs = {}
    for name, leg in (doc.get("legs") or {}).items():
        legs[str(name)] = _parse_section(leg, _SECTIONS["leg"], f"{where}: legs.{name}")
    order = doc.get("leg_order") or list(legs)
    if legs and (not isinstance(order, list) or set(order) - set(legs) or not order):
        raise ScenarioError(f"{where}: leg_order must list names from legs")
    for flag in ("needs_battery", "switch_modes"):
        if not isinstance(doc.get(flag, False), bool):
            raise ScenarioError(f"{where}: {flag} must be true or false")
    return Scenario(doc["name"], doc["description"].strip(), doc.get("needs_battery", False), sections, apps, legs,
                    [str(x) for x in order] if legs else [], doc.get("switch_modes", False), doc=doc)


def _merge(base: dict, over: dict, origin: str) -> dict:
    """Deep-merge recipe overrides; a bare value replaces a parameter's value and records the recipe as origin."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        cur = out.get(k)
        if isinstance(cur, dict) and "value" in cur and not (isinstance(v, dict) and "value" in v):
            out[k] = {"value": v, "derived": f"override in {origin}"}
        elif isinstance(cur, dict) and isinstance(v, dict) and "value" not in cur:
            out[k] = _merge(cur, v, origin)
        else:
            out[k] = v
    return out


def _find(kind: str, name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    f = paths.envs_dir() / kind / f"{name_or_path}.yaml"
    if not f.exists():
        raise ScenarioError(f"unknown {kind[:-1]} {str(name_or_path)!r}; known: {', '.join(names(kind))}")
    return f


def names(kind: str) -> list[str]:
    """Names of the shipped ``envs/<kind>/*.yaml`` files (kind: scenarios, workloads, datasets)."""
    return sorted(p.stem for p in (paths.envs_dir() / kind).glob("*.yaml"))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def load_scenario(name_or_path: str | os.PathLike, overrides: dict | None = None,
                  override_origin: str = "recipe") -> Scenario:
    """A scenario by name (``office``) or path, with optional recipe overrides."""
    path = _find("scenarios", name_or_path)
    doc = _read_yaml(path)
    if overrides:
        if not isinstance(overrides, dict) or not isinstance(doc, dict):
            raise ScenarioError(f"{override_origin}: overrides must be a mapping")
        doc = _merge(doc, overrides, override_origin)
    sc = parse_scenario(doc, str(path) + (f" (with overrides from {override_origin})" if overrides else ""))
    if sc.name != path.stem:
        raise ScenarioError(f"{path}: name {sc.name!r} must match the file name {path.stem!r}")
    sc.path = path
    return sc


# --------------------------------------------------------------------------- workloads

@dataclass
class Mode:
    name: str
    request_rate_hz: float
    deadline_ms: float
    dwell_s: Dist


@dataclass
class Workload:
    name: str
    device: str
    description: str
    default_mode: str
    modes: dict[str, Mode]
    reference: dict[str, Dist]
    path: Path | None = None


def parse_workload(doc: Any, where: str = "workload") -> Workload:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: must be a YAML mapping")
    for key in ("name", "device", "description", "default_mode"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ScenarioError(f"{where}: {key!r} must be a non-empty string")
    unknown = set(doc) - {"name", "device", "description", "default_mode", "modes", "reference"}
    if unknown:
        raise ScenarioError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if not isinstance(doc.get("modes"), dict) or not doc["modes"]:
        raise ScenarioError(f"{where}: modes must be a non-empty mapping")
    modes = {}
    for name, m in doc["modes"].items():
        w = f"{where}: modes.{name}"
        spec = {"request_rate_hz": ("value", (0.01, 1000), True), "deadline_ms": ("value", (0.1, 60000), True),
                "dwell_s": ("dur", (0, 1e6), True)}
        sec = _parse_section(m, spec, w)
        for key in ("request_rate_hz", "deadline_ms"):
            if sec[key].kind != "const":
                raise ScenarioError(f"{w}.{key}: must be a single number")
        modes[str(name)] = Mode(str(name), sec["request_rate_hz"].args[0], sec["deadline_ms"].args[0], sec["dwell_s"])
    if doc["default_mode"] not in modes:
        raise ScenarioError(f"{where}: default_mode {doc['default_mode']!r} is not one of the modes")
    ref = {}
    for key, entry in (doc.get("reference") or {}).items():
        ref[str(key)] = parse_param(entry, f"{where}: reference.{key}")
    return Workload(doc["name"], doc["device"], doc["description"].strip(), doc["default_mode"], modes, ref)


def load_workload(name_or_path: str | os.PathLike) -> Workload:
    path = _find("workloads", name_or_path)
    wl = parse_workload(_read_yaml(path), str(path))
    if wl.name != path.stem:
        raise ScenarioError(f"{path}: name {wl.name!r} must match the file name {path.stem!r}")
    wl.path = path
    return wl


# --------------------------------------------------------------------------- recipes

@dataclass
class RecipeFile:
    split: str
    name: str
    seed: int
    segments: list[tuple[str, float]]        # (scenario, duration_s) in order
    overrides: dict | None = None


@dataclass
class Recipe:
    name: str
    version: int
    device: str
    workload: str | None
    period_s: float
    licence: str
    description: str
    files: list[RecipeFile]
    path: Path | None = None


def parse_recipe(doc: Any, where: str = "recipe") -> Recipe:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: must be a YAML mapping")
    for key in ("name", "device", "description"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ScenarioError(f"{where}: {key!r} must be a non-empty string")
    version = doc.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ScenarioError(f"{where}: version must be a positive integer")
    period = doc.get("period_s", 1.0)
    if not _num(period) or period <= 0:
        raise ScenarioError(f"{where}: period_s must be a positive number")
    if not isinstance(doc.get("files"), list) or not doc["files"]:
        raise ScenarioError(f"{where}: files must be a non-empty list")
    files: list[RecipeFile] = []
    for i, e in enumerate(doc["files"], start=1):
        w = f"{where}: files[{i}]"
        if not isinstance(e, dict):
            raise ScenarioError(f"{w} must be a mapping")
        unknown = set(e) - {"split", "scenario", "seeds", "seed", "duration_s", "name", "overrides"}
        if unknown:
            raise ScenarioError(f"{w}: unknown key {sorted(unknown)[0]!r}")
        if e.get("split") not in ("train", "test"):
            raise ScenarioError(f"{w}: split must be train or test")
        seeds = e.get("seeds", [e["seed"]] if "seed" in e else None)
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                and s >= 0 for s in seeds):
            raise ScenarioError(f"{w}: give seed (an integer >= 0) or seeds (a list of them)")
        sc, dur = e.get("scenario"), e.get("duration_s")
        scs = sc if isinstance(sc, list) else [sc]
        durs = dur if isinstance(dur, list) else [dur] * len(scs)
        if (not scs or not all(isinstance(s, str) for s in scs) or len(durs) != len(scs)
                or not all(_num(d) and d > 0 for d in durs)):
            raise ScenarioError(f"{w}: scenario (a name or a list of names) needs duration_s (a number, or one "
                                f"per scenario)")
        for seed in seeds:
            base = e.get("name") or ("+".join(scs) if len(scs) > 1 else scs[0])
            name = f"{base}-s{seed}" if "name" not in e or len(seeds) > 1 else base
            files.append(RecipeFile(e["split"], name, seed, list(zip(scs, map(float, durs))), e.get("overrides")))
    seen = set()
    for f in files:
        if (f.split, f.name) in seen:
            raise ScenarioError(f"{where}: file {f.split}/{f.name}.csv is produced twice")
        seen.add((f.split, f.name))
    return Recipe(doc["name"], version, doc["device"], doc.get("workload"), float(period),
                  doc.get("licence", "CC-BY-4.0"), doc["description"].strip(), files)


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    path = _find("datasets", name_or_path)
    r = parse_recipe(_read_yaml(path), str(path))
    r.path = path
    return r
