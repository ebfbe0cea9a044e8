"""Device presets: the physical constants of a reference device, from ``envs/devices/*.yaml``.

Every number in a preset file is written as ``{value: ..., source: "..."}`` (a
published figure, with where it was published) or ``{value: ..., derived: "..."}``
(how it was worked out from published figures, or that it is an assumption).
The loader refuses a number without either, so no constant enters the simulator
without a stated origin. ``battery_wh: {value: null, ...}`` declares a device
that has no battery (it is always on external power); ``temp_sensor: {value: false, ...}``
one whose chip temperature software cannot read (a VM): the simulator still models its
heat, but its observation then says the temperature is missing, as the device's selector
sees it. Without the key the device has a sensor. ``service_scale`` (optional, 1 without the
key) is the host's speed against its catalog: every variant's service time (and the work's
energy) in the simulated world is the catalog's times this, while the app's own model (the
observation's prediction, the heuristics' and the prior's tables) keeps the catalog's numbers,
as an app on a host that has slowed down does; ``adascale-rl calibrate`` measures it.
``wake_cv`` (optional, sqrt(1/2) without the key) is the wake-up cost's standard deviation over
its mean; a live run's probe measures the host's own (``adascale-rl run``, ``sim2real``).
``corun_stretch`` (optional, 0 without the key) lengthens the service while other threads keep
busy the cores the app does not use (:func:`adascale_rl.device.model.corun_ms`); ``adascale-rl
calibrate`` fits it (and ``profile``, where its catalog's threads leave a core free).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from adascale_rl import paths
from adascale_rl._files import read_data
from adascale_rl.device.model import WAKE_CV

_NUMBERS = {
    # name: (low, high, may_be_null)
    "cores": (1, 256, False),
    "mem_total_mb": (16, 1e7, False),
    "idle_w": (0.0, 1000.0, False),
    "dyn_w_max": (0.0, 1000.0, False),
    "freq_exponent": (1.0, 4.0, False),
    "thermal_resistance_c_per_w": (0.01, 100.0, False),
    "thermal_time_constant_s": (1.0, 1e5, False),
    "throttle_c": (20.0, 150.0, False),
    "release_c": (20.0, 150.0, False),
    "battery_wh": (0.01, 1e4, True),
    "saver_threshold_pct": (0.0, 100.0, True),
    "saver_cap_mhz": (1.0, 1e5, True),
    "storage_read_mb_s": (0.1, 1e5, False),
    "model_init_ms": (0.0, 1e5, False),
    # how the OS shares the cores (adascale_rl.device.model.Scheduler)
    "tick_ms": (0.1, 100.0, False),
    "wake_slice_ms": (0.0, 100.0, False),
    "wake_wait": (0.0, 10.0, False),
    "wake_lag_ms": (0.001, 1000.0, False),
    "idle_wake_ms": (0.0, 100.0, False),
    "idle_wake_per_ms": (0.0, 10.0, False),
    "idle_sleep_ms": (0.001, 1000.0, False),
}

#: the range a preset's ``service_scale`` may take (a host 20x slower or faster than its catalog is another machine)
SERVICE_SCALE_RANGE = (0.05, 20.0)
#: the range the wake-up cost's standard deviation over its mean (``wake_cv``, optional in a preset; default
#: ``adascale_rl.device.model.WAKE_CV``, a gamma of shape 2) may take: 0 is a fixed cost; the upper end is an
#: assumption, wider than a fit may give (``adascale_rl.elastic.contention.PLAUSIBLE``), as for the other constants
WAKE_CV_RANGE = (0.0, 5.0)
#: the range of the service's lengthening beside co-runners (``corun_stretch``, optional in a preset, default 0): at
#: most 3 (a service 4x as long with every free core busy; an assumption, far beyond the 0.03-0.21 measured on the
#: reference VM, ``adascale_rl.device.model``)
CORUN_STRETCH_RANGE = (0.0, 3.0)
#: the optional numbers of a preset, with their default and range
_OPTIONAL = {"service_scale": (1.0, SERVICE_SCALE_RANGE), "wake_cv": (WAKE_CV, WAKE_CV_RANGE),
             "corun_stretch": (0.0, CORUN_STRETCH_RANGE)}


class PresetError(ValueError):
    """A device preset that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class DevicePreset:
    name: str
    description: str
    cores: int
    mem_total_mb: float
    dvfs_mhz: tuple[float, ...]          # ascending operating points
    idle_w: float                        # whole device, idle
    dyn_w_max: float                     # extra power with all cores busy at the top clock
    freq_exponent: float                 # dynamic power ~ (f / f_max) ** freq_exponent
    thermal_resistance_c_per_w: float    # steady state: T = ambient + R * P
    thermal_time_constant_s: float
    throttle_c: float                    # governor steps the clock down above this
    release_c: float                     # ... and back up below this (hysteresis)
    battery_wh: float | None             # None: no battery, always on external power
    saver_threshold_pct: float | None    # OS battery saver below this charge
    saver_cap_mhz: float | None          # clock cap while the saver is on
    storage_read_mb_s: float             # model load speed
    model_init_ms: float                 # fixed cost of initialising a loaded variant
    tick_ms: float                       # scheduler tick: the unit of time-sharing waits
    wake_slice_ms: float                 # a woken thread's undisturbed run before the tick can preempt it
    wake_wait: float                     # chance of waiting for a core at wake-up, per extra runnable thread per core
    wake_lag_ms: float                   # ... which grows with the previous run's length on this scale
    idle_wake_ms: float                  # idle wake-up cost of a sleeping thread on an idle core
    idle_wake_per_ms: float              # ... plus this much per ms of service
    idle_sleep_ms: float                 # ... reached after sleeping this long
    sources: dict[str, str]
    path: Path | None = None
    temp_sensor: bool = True             # False: software cannot read the chip temperature (the observation says missing)
    service_scale: float = 1.0           # the world's service time / the catalog's latency (the app's model keeps 1)
    wake_cv: float = WAKE_CV             # the wake-up cost's standard deviation over its mean
    corun_stretch: float = 0.0           # the service's lengthening with every free core busy (model.corun_ms)

    @property
    def f_max_mhz(self) -> float:
        return self.dvfs_mhz[-1]

    @property
    def f_min_mhz(self) -> float:
        return self.dvfs_mhz[0]

    @property
    def has_battery(self) -> bool:
        return self.battery_wh is not None

    def energy_budget_j(self, period_s: float) -> float:
        """The reward's energy scale: the full dynamic power budget over one interval."""
        return self.dyn_w_max * period_s


def _entry(doc: dict, key: str, where: str) -> tuple[Any, str]:
    if key not in doc:
        raise PresetError(f"{where}: required key {key!r} is missing")
    e = doc[key]
    if not isinstance(e, dict) or "value" not in e:
        raise PresetError(f"{where}: {key} must be written as {{value: ..., source: ...}} or {{value: ..., derived: ...}}")
    origin = e.get("source") or e.get("derived")
    if not isinstance(origin, str) or not origin.strip():
        raise PresetError(f"{where}: {key} has no 'source' or 'derived' saying where the number comes from")
    return e["value"], ("source: " if e.get("source") else "derived: ") + origin.strip()


def parse_preset(doc: Any, where: str = "preset") -> DevicePreset:
    if not isinstance(doc, dict):
        raise PresetError(f"{where}: must be a YAML mapping")
    for key in ("name", "description"):
        if not isinstance(doc.get(key), str):
            raise PresetError(f"{where}: {key!r} must be a string")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (lo, hi, nullable) in _NUMBERS.items():
        v, origin = _entry(doc, key, where)
        sources[key] = origin
        if v is None and nullable:
            values[key] = None
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
            raise PresetError(f"{where}: {key} = {v!r} must be a number in [{lo:g}, {hi:g}]")
        values[key] = float(v) if key != "cores" else int(v)
    ladder, origin = _entry(doc, "dvfs_mhz", where)
    sources["dvfs_mhz"] = origin
    if (not isinstance(ladder, list) or not ladder
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in ladder)
            or any(b <= a for a, b in zip(ladder, ladder[1:]))):
        raise PresetError(f"{where}: dvfs_mhz must be a non-empty ascending list of positive clocks")
    if values["release_c"] >= values["throttle_c"]:
        raise PresetError(f"{where}: release_c must be below throttle_c (hysteresis)")
    if values["battery_wh"] is not None and (values["saver_threshold_pct"] is None or values["saver_cap_mhz"] is None):
        raise PresetError(f"{where}: a device with a battery needs saver_threshold_pct and saver_cap_mhz")
    temp_sensor = True
    if "temp_sensor" in doc:
        temp_sensor, sources["temp_sensor"] = _entry(doc, "temp_sensor", where)
        if not isinstance(temp_sensor, bool):
            raise PresetError(f"{where}: temp_sensor = {temp_sensor!r} must be true or false")
    optional: dict[str, float] = {}
    for key, (default, (lo, hi)) in _OPTIONAL.items():
        v = default
        if key in doc:
            v, sources[key] = _entry(doc, key, where)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
                raise PresetError(f"{where}: {key} = {v!r} must be a number in [{lo:g}, {hi:g}]")
        optional[key] = float(v)
    return DevicePreset(name=doc["name"], description=doc["description"], dvfs_mhz=tuple(float(x) for x in ladder),
                        sources=sources, temp_sensor=temp_sensor, **optional, **values)


#: the constants of how a host serves (``adascale_rl.device.model.Scheduler``'s and ``service_scale``): what
#: :func:`with_host_constants` may replace, since a measurement on the host at another time may move them
HOST_CONSTANTS = ("tick_ms", "wake_slice_ms", "wake_wait", "wake_lag_ms", "idle_wake_ms", "idle_wake_per_ms",
                  "idle_sleep_ms", "wake_cv", "corun_stretch", "service_scale")


def with_host_constants(preset: DevicePreset, constants: dict[str, Any], source: str) -> DevicePreset:
    """``preset`` with some of its :data:`HOST_CONSTANTS` replaced by ``constants`` (checked against the ranges a
    preset file's values must meet); ``source`` says where the new values come from (their ``sources`` entry)."""
    if not isinstance(constants, dict):
        raise PresetError(f"{source}: the host constants must be a mapping of name to number, not {constants!r}")
    values: dict[str, float] = {}
    for key, v in constants.items():
        if key not in HOST_CONSTANTS:
            raise PresetError(f"{source}: {key!r} is not a host constant ({', '.join(HOST_CONSTANTS)})")
        lo, hi = _OPTIONAL[key][1] if key in _OPTIONAL else _NUMBERS[key][:2]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
            raise PresetError(f"{source}: {key} = {v!r} must be a number in [{lo:g}, {hi:g}]")
        values[key] = float(v)
    if not values:
        return preset
    sources = {**preset.sources, **{k: f"source: {source}" for k in values}}
    return replace(preset, sources=sources, **values)


def load_preset_file(path: str | os.PathLike) -> DevicePreset:
    path = Path(path)
    preset = parse_preset(read_data(path, PresetError), str(path))
    if preset.name != path.stem:
        raise PresetError(f"{path}: name {preset.name!r} must match the file name {path.stem!r}")
    return DevicePreset(**{**preset.__dict__, "path": path})


def device_names() -> list[str]:
    return sorted(p.stem for p in (paths.envs_dir() / "devices").glob("*.yaml"))


def load_device(name_or_path: str) -> DevicePreset:
    """A preset by name (``rpi4``) or by path to a YAML file.

    Parsed once per version of the file: a preset edited while the process runs (a notebook,
    ``calibrate`` then ``sim2real``) is read again, since the cache is keyed by the file's
    inode, modification and change times and size."""
    p = Path(name_or_path)
    if not (p.suffix in (".yaml", ".yml") and p.exists()):
        p = paths.envs_dir() / "devices" / f"{name_or_path}.yaml"
        if not p.exists():
            raise PresetError(f"unknown device {name_or_path!r}; known devices: {', '.join(device_names())}")
    try:
        st = p.stat()
    except OSError as exc:
        raise PresetError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return _load_version(str(p), str(p.resolve()), (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))


@lru_cache(maxsize=64)
def _load_version(path: str, resolved: str, version: tuple) -> DevicePreset:
    """``path`` as given (the preset's ``path``); the cache is keyed by the file it resolves to and its version."""
    return load_preset_file(Path(path))
