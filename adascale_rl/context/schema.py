"""The resource context: the fields of one sample, declared once.

A context sample is one row of a trace; a trace is a time series of samples at a
fixed period. Every column carries its unit in its name (``bg_runnable`` counts
threads, which its name says). Three fields are required; the others have a
documented default that applies when a trace (or a live device) does not provide
them, or, for the two without one, a stated meaning of "absent": no clock cap
(``freq_cap_mhz``), or "estimate it from ``bg_cpu_util``" (``bg_runnable``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """One column of a context sample."""

    name: str
    unit: str
    low: float
    high: float
    required: bool
    default: float | None
    doc: str
    integral: bool = False  # only whole numbers allowed (flags)
    #: optional fields without a default: what :meth:`fill` gives when a trace lacks the column ...
    absent_fill: float = math.nan
    #: ... and what that means, in a few words (the schema table prints it)
    absent_means: str = ""

    @property
    def fill(self) -> float:
        """The value consumers get where a trace lacks this column: the default, else ``absent_fill``."""
        return self.absent_fill if self.default is None else self.default

    def check(self, value: float) -> str | None:
        """Return why ``value`` is not acceptable, or None if it is."""
        if not math.isfinite(value):
            return f"value {value!r} is not a finite number"
        if value < self.low or value > self.high:
            return f"value {value:g} is out of range [{self.low:g}, {self.high:g}] {self.unit}"
        if self.integral and value != int(value):
            return f"value {value:g} must be 0 or 1"
        return None


FIELDS: tuple[Field, ...] = (
    Field("t_s", "s", 0.0, 1e9, True, None,
          "time since the start of the trace"),
    Field("bg_cpu_util", "fraction", 0.0, 1.0, True, None,
          "share of total CPU capacity (all cores) used by other processes"),
    # The upper bound is a sanity limit, not physics (assumption): 4096 runnable threads is 512 per
    # core on the largest device here (the Pixel 4's 8-core Snapdragon 855); more is a broken reading.
    Field("bg_runnable", "threads", 0.0, 4096.0, False, None,
          "runnable threads other than the app's (the background run queue), mean over the interval; "
          "does not saturate at the core count as bg_cpu_util does; default: none, estimated by consumers "
          "as bg_cpu_util x the device's cores (Trace.column gives NaN: absent)",
          absent_fill=math.nan, absent_means="estimated"),
    Field("mem_avail_mb", "MB", 0.0, 1e7, True, None,
          "memory available to a new allocation without swapping (MiB)"),
    Field("freq_cap_mhz", "MHz", 1.0, 1e5, False, None,
          "exogenous clock cap (power mode, governor limit); default: no cap, the device's top clock",
          absent_fill=math.inf, absent_means="no cap"),
    Field("ambient_temp_c", "degC", -40.0, 85.0, False, 25.0,
          "ambient temperature around the device"),
    Field("battery_pct", "percent", 0.0, 100.0, False, 100.0,
          "battery state of charge"),
    Field("plugged", "flag", 0.0, 1.0, False, 1.0,
          "1 when on external power, 0 on battery", integral=True),
    Field("request_rate_hz", "Hz", 0.0, 1000.0, False, 10.0,
          "inference requests per second issued by the app"),
    Field("deadline_ms", "ms", 0.1, 60000.0, False, 100.0,
          "the app's per-request latency deadline"),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if f.required)
OPTIONAL: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.required)
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
DEFAULTS: dict[str, float | None] = {f.name: f.default for f in FIELDS if not f.required}


def field(name: str) -> Field:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown context field {name!r}; known fields: {', '.join(NAMES)}") from None


def describe() -> str:
    """A human-readable table of the schema (used by ``adascale-rl traces schema``)."""
    lines = [f"{'field':<16} {'unit':<9} {'range':<20} {'required/default':<18} meaning"]
    for f in FIELDS:
        rng = f"[{f.low:g}, {f.high:g}]"
        req = "required" if f.required else (f.absent_means if f.default is None else f"default {f.default:g}")
        lines.append(f"{f.name:<16} {f.unit:<9} {rng:<20} {req:<18} {f.doc}")
    return "\n".join(lines)
