"""The context schema: one declaration of fields, units, ranges and defaults."""

import math

import pytest

from adascale_rl.context import schema

UNIT_SUFFIX = {"_s": "s", "_mb": "MB", "_mhz": "MHz", "_c": "degC", "_pct": "percent", "_hz": "Hz", "_ms": "ms"}


def test_required_fields_are_the_documented_three():
    assert schema.REQUIRED == ("t_s", "bg_cpu_util", "mem_avail_mb")
    assert set(schema.OPTIONAL) == {"bg_runnable", "freq_cap_mhz", "ambient_temp_c", "battery_pct", "plugged",
                                    "request_rate_hz", "deadline_ms"}
    assert schema.NAMES[0] == "t_s"
    assert len(set(schema.NAMES)) == len(schema.NAMES)


@pytest.mark.parametrize("f", schema.FIELDS, ids=lambda f: f.name)
def test_units_are_in_the_names(f):
    suffix = next((s for s in UNIT_SUFFIX if f.name.endswith(s)), None)
    if suffix is None:  # dimensionless fields say so; a count of threads says what it counts
        assert f.unit in ("fraction", "flag") or (f.name, f.unit) == ("bg_runnable", "threads")
    else:
        assert f.unit == UNIT_SUFFIX[suffix]


@pytest.mark.parametrize("f", schema.FIELDS, ids=lambda f: f.name)
def test_ranges_and_defaults_are_consistent(f):
    assert f.low < f.high
    if f.required:
        assert f.default is None
    elif f.default is not None:
        assert f.check(f.default) is None, "a default must itself be a valid value"
    assert f.doc and not f.doc[0].isupper()


def test_freq_cap_default_means_no_cap():
    assert schema.DEFAULTS["freq_cap_mhz"] is None
    assert "no cap" in schema.field("freq_cap_mhz").doc


@pytest.mark.parametrize("f", [f for f in schema.FIELDS if not f.required and f.default is None],
                         ids=lambda f: f.name)
def test_optional_fields_without_a_default_say_what_absent_means(f):
    assert f.absent_means and f.absent_means in f.doc
    assert f.fill is f.absent_fill and f.check(f.fill) is not None, "the absent marker must not be a valid value"


def test_bg_runnable_is_optional_threads_and_absent_means_estimate_it():
    f = schema.field("bg_runnable")
    assert (f.unit, f.low, f.high, f.required, f.default, f.integral) == ("threads", 0.0, 4096.0, False, None, False)
    assert math.isnan(f.fill) and schema.DEFAULTS["bg_runnable"] is None
    assert "bg_cpu_util x the device's cores" in f.doc
    assert f.check(0.0) is None and f.check(2.37) is None and f.check(4096.0) is None
    assert "out of range [0, 4096] threads" in f.check(-0.01)
    assert "not a finite number" in f.check(math.nan)
    # ordinary optional fields fill their default, freq_cap_mhz +inf (no cap)
    assert schema.field("ambient_temp_c").fill == 25.0 and schema.field("freq_cap_mhz").fill == math.inf


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_refuses_non_finite(value):
    assert "not a finite number" in schema.field("bg_cpu_util").check(value)


def test_check_range_and_integral():
    f = schema.field("bg_cpu_util")
    assert f.check(0.0) is None and f.check(1.0) is None
    assert "out of range [0, 1] fraction" in f.check(1.01)
    assert "out of range" in f.check(-0.01)
    p = schema.field("plugged")
    assert p.check(1.0) is None and p.check(0.0) is None
    assert p.check(0.5) == "value 0.5 must be 0 or 1"


def test_unknown_field_names_the_known_ones():
    with pytest.raises(KeyError) as exc:
        schema.field("cpu_load")
    assert "cpu_load" in str(exc.value) and "bg_cpu_util" in str(exc.value)


def test_describe_lists_every_field_with_unit_and_default():
    text = schema.describe()
    lines = text.splitlines()
    assert len(lines) == len(schema.FIELDS) + 1
    for f, line in zip(schema.FIELDS, lines[1:]):
        assert line.startswith(f.name) and f" {f.unit} " in line
        if f.required:
            assert "required" in line
        elif f.default is None:
            assert f.absent_means in line
        else:
            assert f"default {f.default:g}" in line
