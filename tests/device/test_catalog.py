"""The catalog format (adascale_rl/device/catalog.py) and the shipped catalogs (envs/catalogs/*.json)."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adascale_rl import paths
from adascale_rl.device.catalog import (FORMAT_VERSION, METRICS, OPERATORS, PROVENANCE_KINDS, CatalogError,
                                        load_catalog, validate)
from adascale_rl.device.presets import device_names, load_device

REFERENCE_DEVICES = ("rpi4", "jetson-nano", "pixel4")
CATALOG_DIR = paths.envs_dir() / "catalogs"
SHIPPED = sorted(CATALOG_DIR.glob("*.json"))
#: the catalogs derived from published figures (a measured one, e.g. local-x86, has its own tests)
PUBLISHED = [p for p in SHIPPED if p.stem in REFERENCE_DEVICES]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "derive_catalogs.py"


def _doc(device: str = "rpi4") -> dict:
    return json.loads((CATALOG_DIR / f"{device}.json").read_text(encoding="utf-8"))


def _dominates(a, b) -> bool:
    """a is at least as accurate and at least as fast as b, and strictly better in one."""
    return (a.accuracy >= b.accuracy and a.latency_ms <= b.latency_ms
            and (a.accuracy > b.accuracy or a.latency_ms < b.latency_ms))


# --------------------------------------------------------------------------- shipped catalogs

def test_every_reference_device_has_a_catalog():
    assert {p.stem for p in SHIPPED} >= set(REFERENCE_DEVICES)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_catalog_validates_for_a_known_device(path):
    cat = load_catalog(path)
    assert cat.device == path.stem and cat.device in device_names()
    assert len(cat) >= 12


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.stem)
def test_shipped_catalog_validates_with_provenance_for_every_metric(path):
    cat = load_catalog(path)
    assert cat.device == path.stem and cat.device in device_names()
    assert cat.task == "ImageNet-1k top-1 (fraction)" and cat.reference
    assert len(cat) >= 12
    for v in cat.variants:
        assert set(v.operators) <= set(OPERATORS)
        assert 0.3 < v.accuracy < 0.8, "accuracy is a fraction, not a percentage"
        assert v.size_mb < v.peak_mem_mb
        for metric in METRICS:
            p = v.provenance[metric]
            needed = PROVENANCE_KINDS[p["kind"]]
            assert p["kind"] != "measured", "the shipped catalogs are derived from published figures"
            assert len(p[needed].strip()) > 20, f"{v.id}.{metric}: provenance too thin to check"


@pytest.mark.parametrize("device", REFERENCE_DEVICES)
def test_shipped_ladder_is_a_sensible_pareto_front(device):
    cat = load_catalog(CATALOG_DIR / f"{device}.json")
    vs = cat.variants
    assert cat.largest != cat.smallest
    # no variant dominates all others
    for a in vs:
        assert not all(_dominates(a, b) for b in vs if b is not a), a.id
    # most variants are on the accuracy-latency front, and the rest are close to it
    front = [b for b in vs if not any(_dominates(a, b) for a in vs)]
    assert len(front) > len(vs) / 2
    for b in vs:
        best_no_slower = max(a.accuracy for a in vs if a.latency_ms <= b.latency_ms)
        assert best_no_slower - b.accuracy <= 0.025, f"{b.id} is far off the front"
    # memory spread the simulator's switch masks can act on; fp32 1.4-224 is the biggest
    mem = cat.column("peak_mem_mb")
    assert mem.max() - mem.min() >= 20.0 and mem.max() <= 80.0
    biggest = vs[int(mem.argmax())]
    assert biggest.branch["width"] == 1.4 and "fp32" in biggest.operators


@pytest.mark.parametrize("device", REFERENCE_DEVICES)
def test_shipped_numbers_agree_with_the_device_preset(device):
    cat = load_catalog(CATALOG_DIR / f"{device}.json")
    preset = load_device(device)
    by_id = {v.id: v for v in cat.variants}
    for v in cat.variants:
        # power while running never exceeds the preset's all-core dynamic power
        assert v.energy_mj / v.latency_ms <= preset.dyn_w_max
        assert 0.05 <= v.parallel_frac <= 0.95
        assert 0.5 <= v.compute_bound_frac <= 0.9
        if "int8" in v.operators:
            twin = by_id.get(v.id.replace("int8", "fp32"))
            if twin is not None:
                assert v.latency_ms < twin.latency_ms and v.size_mb < twin.size_mb
                assert v.compute_bound_frac < twin.compute_bound_frac
                assert v.accuracy < twin.accuracy
    # the reference variant sits at the published ncnn 4-thread anchor of its device (within clock adjustments)
    anchor = {"rpi4": 61.9, "jetson-nano": 33.8, "pixel4": 4.7}[device]
    assert anchor <= by_id["w1.0-r224-fp32"].latency_ms <= 1.2 * anchor


# --------------------------------------------------------------------------- refused catalogs

def _break(mutate):
    doc = _doc()
    mutate(doc)
    return doc


def _set_variant(i, key, value):
    def f(doc):
        doc["variants"][i][key] = value
    return f


def _set_prov(i, metric, value):
    def f(doc):
        if value is None:
            del doc["variants"][i]["provenance"][metric]
        else:
            doc["variants"][i]["provenance"][metric] = value
    return f


BAD = {
    "missing provenance": (_set_prov(0, "energy_mj", None), r"provenance\.energy_mj"),
    "provenance without kind": (_set_prov(1, "latency_ms", {"rule": "x"}), r"provenance\.latency_ms.*kind"),
    "derived without rule": (_set_prov(1, "latency_ms", {"kind": "derived", "rule": "  "}),
                             r"provenance\.latency_ms.*'rule'"),
    "published without source": (_set_prov(2, "accuracy", {"kind": "published"}), r"provenance\.accuracy.*'source'"),
    "no provenance at all": (_set_variant(0, "provenance", None), r"\.provenance"),
    "unknown operator": (_set_variant(0, "operators", ["fp32", "fp16"]), r"operators.*'fp16'"),
    "operators as a string": (_set_variant(0, "operators", "int8"), r"\.operators"),
    "accuracy in percent": (_set_variant(0, "accuracy", 75.0), r"\.accuracy.*out of range"),
    "negative latency": (_set_variant(3, "latency_ms", -1.0), r"\.latency_ms.*out of range"),
    "parallel_frac above 1": (_set_variant(3, "parallel_frac", 1.5), r"\.parallel_frac"),
    "non-finite energy": (_set_variant(3, "energy_mj", math.inf), r"\.energy_mj.*finite"),
    "boolean metric": (_set_variant(3, "size_mb", True), r"\.size_mb"),
    "missing metric": (lambda d: d["variants"][0].pop("peak_mem_mb"), r"\.peak_mem_mb"),
    "branch not an object": (_set_variant(0, "branch", "w1.0"), r"\.branch"),
    "empty id": (_set_variant(0, "id", ""), r"variants\[0\]\.id"),
    "duplicate id": (lambda d: d["variants"][1].update(id=d["variants"][0]["id"]), r"appears twice"),
    "wrong format_version": (lambda d: d.update(format_version=FORMAT_VERSION + 1), r"format_version"),
    "wrong format": (lambda d: d.update(format="something-else"), r"format"),
    "no variants": (lambda d: d.update(variants=[]), r"variants"),
    "missing name": (lambda d: d.pop("name"), r"name.*missing"),
    "measured without machine": (
        _set_prov(0, "latency_ms", {"kind": "measured", "method": "median of 100 runs after 10 warm-up"}),
        r"machine"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_catalog_is_refused_naming_the_field(case):
    mutate, pattern = BAD[case]
    with pytest.raises(CatalogError, match=pattern):
        validate(_break(mutate), source="bad.json")


def test_error_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_break(_set_variant(0, "accuracy", 75.0))), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"broken\.json: variant 'w1\.4-r224-fp32'\.accuracy"):
        load_catalog(path)


def test_unreadable_and_invalid_json_are_catalog_errors(tmp_path):
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "adascale-catalog",\n "variants": [,]}', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"bad\.json: line 2"):
        load_catalog(bad)


def test_measured_catalog_with_machine_is_accepted():
    doc = _break(_set_prov(0, "latency_ms", {"kind": "measured", "method": "median of 100 runs"}))
    doc["machine"] = {"cpu": "Cortex-A72", "threads": 4}
    assert validate(doc).machine == {"cpu": "Cortex-A72", "threads": 4}


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=6)
_KEYS = ["id", "branch", "operators", "provenance", *METRICS]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(_KEYS + ["format", "format_version", "variants", "name"]), value=_JSON,
       index=st.integers(0, 3))
def test_any_corruption_ends_in_catalog_error_or_a_valid_catalog(key, value, index):
    doc = _doc()
    if key in _KEYS:
        doc["variants"][index][key] = value
    else:
        doc[key] = value
    try:
        cat = validate(doc)
    except CatalogError:
        return
    assert len(cat) >= 1


# --------------------------------------------------------------------------- round trip and reproduction

@pytest.mark.parametrize("device", REFERENCE_DEVICES)
def test_save_load_round_trip(tmp_path, device):
    cat = load_catalog(CATALOG_DIR / f"{device}.json")
    again = load_catalog(cat.save(tmp_path / "copy.json"))
    assert again.variants == cat.variants
    assert [v.provenance for v in again.variants] == [v.provenance for v in cat.variants]
    assert again.to_json() == cat.to_json()
    assert (tmp_path / "copy.json").read_bytes() == (CATALOG_DIR / f"{device}.json").read_bytes()


def test_save_refuses_an_invalid_catalog(tmp_path):
    cat = load_catalog(CATALOG_DIR / "rpi4.json")
    cat.variants.append(cat.variants[0])
    with pytest.raises(CatalogError, match="appears twice"):
        cat.save(tmp_path / "dup.json")
    assert not (tmp_path / "dup.json").exists()


@pytest.fixture(scope="module")
def derive_script():
    if not SCRIPT.exists():
        pytest.skip("scripts/derive_catalogs.py is not shipped in this install")
    spec = importlib.util.spec_from_file_location("derive_catalogs_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the script loads
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_derivation_script_reproduces_the_shipped_catalogs(tmp_path, derive_script):
    written = derive_script.main(["--out-dir", str(tmp_path), "-q"])
    assert sorted(p.name for p in written) == sorted(f"{d}.json" for d in REFERENCE_DEVICES)
    for device in REFERENCE_DEVICES:
        assert (tmp_path / f"{device}.json").read_bytes() == (CATALOG_DIR / f"{device}.json").read_bytes(), (
            f"envs/catalogs/{device}.json is stale: run python scripts/derive_catalogs.py")


def test_derivation_architecture_matches_the_published_table(derive_script):
    # the activation sizes come from an architecture walk: it must reproduce the slim README's MACs and params
    for (width, res), (macs, params, *_rest) in derive_script.SLIM_V2.items():
        arch = derive_script.mobilenet_v2(width, res)
        assert arch.macs_m == pytest.approx(macs, rel=0.1), (width, res)
        assert arch.params_m == pytest.approx(params, rel=0.05), (width, res)


def test_derivation_fits_the_published_anchor(derive_script):
    # Amdahl's p reproduces the ncnn 1-thread/4-thread ratio it was fitted on
    for device in REFERENCE_DEVICES:
        fit = derive_script.fit_device(device)
        t4, t1 = derive_script.NCNN[device][1]["MobileNetV2"]
        assert derive_script.amdahl(fit.p_ref, 4) == pytest.approx(t1 / t4)
        assert fit.slope > 0, "smaller models must parallelise worse"
    # the Pi 4 anchor, measured at 1.8 GHz and scaled to 1.5 GHz, lands on the published 1.5 GHz figure
    assert derive_script.fit_device("rpi4").t4_anchor == pytest.approx(derive_script.NCNN_PI4_1500_V2_MS, rel=0.01)


def test_catalog_is_not_mutated_by_validation():
    doc = _doc("pixel4")
    before = copy.deepcopy(doc)
    validate(doc)
    assert doc == before


def test_unknown_variant_key_and_bad_overhead_are_refused():
    from adascale_rl.device.catalog import CatalogError, validate
    from _envdata import LADDER, make_catalog_doc

    doc = make_catalog_doc(LADDER)
    doc["variants"][0]["latency_p95_ms"] = 3.0
    with pytest.raises(CatalogError, match="unknown key"):
        validate(doc)
    doc = make_catalog_doc(LADDER)
    doc["runtime_overhead_mb"] = {"value": 500.0, "derived": "x"}
    with pytest.raises(CatalogError, match="runtime_overhead_mb"):
        validate(doc)
    doc["runtime_overhead_mb"] = 5.0
    with pytest.raises(CatalogError, match="runtime_overhead_mb"):
        validate(doc)
