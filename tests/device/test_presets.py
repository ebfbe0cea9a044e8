"""Device presets (adascale_rl/device/presets.py) and the shipped envs/devices/*.yaml."""

from __future__ import annotations

import copy

import pytest
import yaml

from adascale_rl import paths
from adascale_rl.device.presets import (PresetError, device_names, load_device, load_preset_file, parse_preset)

REFERENCE_DEVICES = ("rpi4", "jetson-nano", "pixel4")
DEVICE_DIR = paths.envs_dir() / "devices"


def _doc(name: str = "rpi4") -> dict:
    return yaml.safe_load((DEVICE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def test_reference_devices_are_shipped():
    assert set(device_names()) >= set(REFERENCE_DEVICES)


@pytest.mark.parametrize("name", sorted((DEVICE_DIR).glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_preset_loads(name):
    preset = load_device(name.stem)
    assert preset.name == name.stem and preset.path == name
    assert preset.dvfs_mhz == tuple(sorted(preset.dvfs_mhz))
    assert preset.f_max_mhz == preset.dvfs_mhz[-1] and preset.f_min_mhz == preset.dvfs_mhz[0]
    assert preset.release_c < preset.throttle_c
    assert preset.has_battery == (preset.battery_wh is not None)
    # every number says where it comes from
    raw = _doc(name.stem)
    numbers = [k for k, v in raw.items() if isinstance(v, dict) and "value" in v]
    assert set(preset.sources) == set(numbers)
    for key, origin in preset.sources.items():
        assert origin.startswith(("source: ", "derived: ")) and len(origin) > len("derived: ") + 10, key


def test_load_by_path_gives_the_same_preset():
    by_name = load_device("pixel4")
    by_path = load_device(str(DEVICE_DIR / "pixel4.yaml"))
    assert by_path == by_name


def test_a_preset_edited_in_a_running_process_is_read_again(tmp_path):
    f = tmp_path / "pixel4.yaml"
    doc = _doc("pixel4")
    f.write_text(yaml.safe_dump(doc))
    first = load_device(str(f))
    assert load_device(str(f)) is first  # parsed once per version of the file
    doc["tick_ms"] = {"value": 10, "source": "measured here: CONFIG_HZ=100 in /proc/config.gz (a test edit)"}
    f.write_text(yaml.safe_dump(doc) + "# edited\n")
    again = load_device(str(f))
    assert again.tick_ms == 10 and first.tick_ms != 10


@pytest.mark.parametrize("key", ["cores", "idle_w", "dvfs_mhz", "throttle_c", "battery_wh"])
def test_number_without_source_or_derived_is_refused(key):
    doc = _doc()
    doc[key] = {"value": doc[key]["value"]}
    with pytest.raises(PresetError, match=rf"{key} has no 'source' or 'derived'"):
        parse_preset(doc, "rpi4.yaml")


@pytest.mark.parametrize("origin", [{"source": ""}, {"derived": "   "}, {"source": None}])
def test_empty_origin_is_refused(origin):
    doc = _doc()
    doc["dyn_w_max"] = {"value": 3.7, **origin}
    with pytest.raises(PresetError, match="dyn_w_max has no 'source' or 'derived'"):
        parse_preset(doc, "rpi4.yaml")


def test_bare_number_is_refused():
    doc = _doc()
    doc["cores"] = 4
    with pytest.raises(PresetError, match=r"rpi4\.yaml: cores must be written as"):
        parse_preset(doc, "rpi4.yaml")


def test_missing_key_is_refused():
    doc = _doc("jetson-nano")
    del doc["model_init_ms"]
    with pytest.raises(PresetError, match="'model_init_ms' is missing"):
        parse_preset(doc, "jetson-nano.yaml")


@pytest.mark.parametrize("release", [80, 85])
def test_release_not_below_throttle_is_refused(release):
    doc = _doc()
    assert doc["throttle_c"]["value"] == 80
    doc["release_c"] = {"value": release, "derived": "test"}
    with pytest.raises(PresetError, match="release_c must be below throttle_c"):
        parse_preset(doc, "rpi4.yaml")


@pytest.mark.parametrize("key, value", [("cores", 0), ("freq_exponent", 5.0), ("idle_w", "2.7"), ("cores", True),
                                        ("thermal_time_constant_s", float("nan")), ("mem_total_mb", None)])
def test_out_of_range_or_wrong_type_is_refused(key, value):
    doc = _doc()
    doc[key] = {"value": value, "derived": "test"}
    with pytest.raises(PresetError, match=rf"{key} = .* must be a number"):
        parse_preset(doc, "rpi4.yaml")


@pytest.mark.parametrize("ladder", [[], [600, 600, 1500], [1500, 600], [0, 600], "1500", [600, True]])
def test_bad_dvfs_ladder_is_refused(ladder):
    doc = _doc()
    doc["dvfs_mhz"] = {"value": ladder, "source": "test"}
    with pytest.raises(PresetError, match="dvfs_mhz must be a non-empty ascending list"):
        parse_preset(doc, "rpi4.yaml")


def test_battery_without_saver_is_refused():
    doc = _doc("pixel4")
    doc["saver_cap_mhz"] = {"value": None, "derived": "test"}
    with pytest.raises(PresetError, match="battery needs saver_threshold_pct and saver_cap_mhz"):
        parse_preset(doc, "pixel4.yaml")


def test_unknown_device_names_the_known_ones():
    with pytest.raises(PresetError) as err:
        load_device("rpi5")
    msg = str(err.value)
    assert "unknown device 'rpi5'" in msg
    for name in REFERENCE_DEVICES:
        assert name in msg


def test_file_name_must_match_preset_name(tmp_path):
    doc = copy.deepcopy(_doc())
    path = tmp_path / "my-pi.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(PresetError, match="name 'rpi4' must match the file name 'my-pi'"):
        load_preset_file(path)


def test_invalid_yaml_and_missing_file_are_preset_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(PresetError, match="not valid YAML"):
        load_preset_file(bad)
    with pytest.raises(PresetError, match="cannot be read"):
        load_preset_file(tmp_path / "absent.yaml")
    with pytest.raises(PresetError, match="must be a YAML mapping"):
        parse_preset(["not", "a", "mapping"])


def test_a_device_says_whether_software_can_read_its_temperature():
    assert load_device("rpi4").temp_sensor is True  # not declared: a sensor
    assert load_device("local-x86").temp_sensor is False  # a VM: no sensor readable
    doc = _doc()
    doc["temp_sensor"] = {"value": False, "source": "measured: no sensor"}
    preset = parse_preset(doc, "rpi4.yaml")
    assert preset.temp_sensor is False and preset.sources["temp_sensor"] == "source: measured: no sensor"
    for bad in ({"value": "no", "derived": "a string"}, {"value": 0, "derived": "a number"}, False):
        doc["temp_sensor"] = bad
        with pytest.raises(PresetError, match="temp_sensor"):
            parse_preset(doc, "rpi4.yaml")


def test_a_device_may_say_how_much_slower_its_host_serves_than_its_catalog():
    assert load_device("rpi4").service_scale == 1.0  # not declared: the catalog's latencies as they are
    doc = _doc()
    doc["service_scale"] = {"value": 1.42, "source": "measured: back-to-back service / catalog latency"}
    preset = parse_preset(doc, "rpi4.yaml")
    assert preset.service_scale == 1.42
    assert preset.sources["service_scale"] == "source: measured: back-to-back service / catalog latency"
    for bad in ({"value": 0, "derived": "zero"}, {"value": -1.5, "derived": "negative"},
                {"value": 50.0, "derived": "another machine"}, {"value": "1.4", "derived": "a string"},
                {"value": True, "derived": "a bool"}, {"value": float("nan"), "derived": "nan"}, 1.4):
        doc["service_scale"] = bad
        with pytest.raises(PresetError, match="service_scale"):
            parse_preset(doc, "rpi4.yaml")


def test_a_host_constant_measured_at_another_time_replaces_the_presets_and_says_where_it_came_from():
    from adascale_rl.device.presets import HOST_CONSTANTS, with_host_constants

    shipped = load_device("local-x86")
    moved = with_host_constants(shipped, {"idle_wake_ms": 1.85, "idle_wake_per_ms": 0}, "the probe of run 0-greedy")
    assert (moved.idle_wake_ms, moved.idle_wake_per_ms) == (1.85, 0.0)
    assert moved.sources["idle_wake_ms"] == "source: the probe of run 0-greedy"
    assert (moved.idle_sleep_ms, moved.cores, moved.sources["cores"]) == (shipped.idle_sleep_ms, shipped.cores,
                                                                         shipped.sources["cores"])
    assert shipped.idle_wake_ms != 1.85  # the preset itself is untouched
    assert with_host_constants(shipped, {}, "nothing") is shipped
    assert "service_scale" in HOST_CONSTANTS and "cores" not in HOST_CONSTANTS
    for bad, words in (({"cores": 4}, "not a host constant"), ({"idle_wake_ms": -0.1}, "idle_wake_ms = -0.1"),
                       ({"idle_wake_ms": float("nan")}, "idle_wake_ms"), ({"service_scale": 50.0}, "service_scale"),
                       ({"idle_wake_ms": "1"}, "idle_wake_ms"), ([("idle_wake_ms", 1.0)], "a mapping")):
        with pytest.raises(PresetError, match=words):
            with_host_constants(shipped, bad, "a test")


def _optional_number_is_read_and_checked(key: str, good: float, too_high: float) -> None:
    """An optional number of a preset: read where given; negative, above its range, null or a bare number (no
    origin) refused, naming the key."""
    doc = _doc()
    doc[key] = {"value": good, "source": "measured: a test"}
    assert getattr(parse_preset(doc, "rpi4.yaml"), key) == good
    for bad in ({"value": -0.1, "derived": "negative"}, {"value": too_high, "derived": "too much"},
                {"value": None, "derived": "null"}, 0.3):
        doc[key] = bad
        with pytest.raises(PresetError, match=key):
            parse_preset(doc, "rpi4.yaml")


def test_a_device_may_say_how_far_its_wake_up_cost_spreads():
    """``wake_cv`` is optional (the model's default without it), checked like any number, a host constant, and what
    the contention model spreads the wake-up cost by."""
    import numpy as np

    from adascale_rl.device import model
    from adascale_rl.device.presets import HOST_CONSTANTS, with_host_constants

    shipped = load_device("local-x86")
    assert shipped.wake_cv == pytest.approx(model.WAKE_CV) and "wake_cv" not in shipped.sources
    _optional_number_is_read_and_checked("wake_cv", 0.25, too_high=9.0)
    assert "wake_cv" in HOST_CONSTANTS
    tight = with_host_constants(shipped, {"wake_cv": 0.1}, "a probe")
    with pytest.raises(PresetError, match="wake_cv = 7"):
        with_host_constants(shipped, {"wake_cv": 7.0}, "a probe")
    args = (np.float64(2.0), np.float64(60.0), np.float64(0.0), float(shipped.cores), 1.0)
    wide_c = model.contention(*args, model.Scheduler.of(shipped))
    tight_c = model.contention(*args, model.Scheduler.of(tight))
    assert float(tight_c.spread_ms) == pytest.approx(float(wide_c.spread_ms) * 0.1 / model.WAKE_CV)
    assert float(tight_c.spread_ms) > 0 and float(tight_c.base_ms) == float(wide_c.base_ms)
    # a device object that does not carry it (an older table) has the default
    from types import SimpleNamespace

    bare = SimpleNamespace(**{k: getattr(shipped, k) for k in model.Scheduler.__dataclass_fields__ if k != "wake_cv"})
    assert model.Scheduler.of(bare).wake_cv == model.WAKE_CV


def test_a_device_may_say_how_much_co_runners_lengthen_its_service():
    """``corun_stretch`` is optional (0 without it: the shipped presets), checked against its range, a host
    constant, carried into the scheduler and exported tables (an older table without it reads as 0)."""
    from types import SimpleNamespace

    from adascale_rl.device import model
    from adascale_rl.device.presets import HOST_CONSTANTS, with_host_constants

    for name in ("local-x86", "rpi4", "pixel4", "jetson-nano"):
        shipped = load_device(name)
        assert shipped.corun_stretch == 0.0 and model.Scheduler.of(shipped).corun_stretch == 0.0
    _optional_number_is_read_and_checked("corun_stretch", 0.2, too_high=3.5)
    assert "corun_stretch" in HOST_CONSTANTS
    host = with_host_constants(load_device("local-x86"), {"corun_stretch": 0.15}, "calibrate")
    assert model.Scheduler.of(host).corun_stretch == 0.15 and "calibrate" in host.sources["corun_stretch"]
    with pytest.raises(PresetError, match="corun_stretch = 4"):
        with_host_constants(host, {"corun_stretch": 4.0}, "a probe")
    bare = SimpleNamespace(**{k: getattr(host, k) for k in model.Scheduler.__dataclass_fields__
                              if k != "corun_stretch"})
    assert model.Scheduler.of(bare).corun_stretch == 0.0
    from adascale_rl.device.catalog import load_catalog

    table = model.VariantTable(host, load_catalog(paths.envs_dir() / "catalogs" / "local-x86.json"), 0.1).to_dict()
    assert table["scheduler"]["corun_stretch"] == 0.15
    del table["scheduler"]["corun_stretch"]  # a folder exported before the constant
    assert model.VariantTable.from_dict(table).sched.corun_stretch == 0.0
