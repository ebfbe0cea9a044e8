"""Scenario, workload and recipe files: every number has an origin, bad files are refused by name."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import yaml

from adascale_rl import paths
from adascale_rl.context.scenarios import (
    Dist, ScenarioError, load_recipe, load_scenario, load_workload, names, parse_recipe, parse_scenario,
    parse_value, parse_workload,
)


def _doc(name="office"):
    return yaml.safe_load((paths.envs_dir() / "scenarios" / f"{name}.yaml").read_text())


def _walk_params(node, where=""):
    if isinstance(node, dict):
        if "value" in node:
            yield where, node
        else:
            for k, v in node.items():
                yield from _walk_params(v, f"{where}.{k}" if where else k)


@pytest.mark.parametrize("kind,name", [("scenarios", n) for n in names("scenarios")]
                         + [("workloads", n) for n in names("workloads")])
def test_every_number_names_its_origin(kind, name):
    doc = yaml.safe_load((paths.envs_dir() / kind / f"{name}.yaml").read_text())
    params = list(_walk_params(doc))
    assert params
    for where, entry in params:
        origin = entry.get("source") or entry.get("derived")
        assert isinstance(origin, str) and len(origin) > 8, f"{name}: {where} has no real origin"
    (load_scenario if kind == "scenarios" else load_workload)(name)


def test_distributions_sample_what_they_say():
    rng = np.random.default_rng(0)
    p = parse_value({"pareto": {"xm": 30, "alpha": 1.3}}, "x")
    s = p.sample(rng, 20000)
    assert s.min() >= 30 and p.low == 30 and math.isinf(p.high)
    assert np.mean(s > 300) == pytest.approx(10 ** -1.3, rel=0.15)  # P[X > 10 xm] = 10^-alpha: heavy tail
    ln = parse_value({"lognormal": {"median": 20, "sigma": 1.0}}, "x").sample(rng, 20000)
    assert np.median(ln) == pytest.approx(20, rel=0.05)
    u = parse_value([0.2, 0.4], "x")
    assert u.kind == "uniform" and 0.2 <= u.sample(rng) <= 0.4 and u.mean == pytest.approx(0.3)
    assert parse_value(3, "x") == Dist("const", (3.0,))


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d["cpu"].update(base=0.05), "cpu.base must be written as {value: ..., source: ...}"),
    (lambda d: d["cpu"]["base"].pop("derived"), "cpu.base has no 'source' or 'derived'"),
    (lambda d: d["cpu"]["base"].update(value=[0.5, 1.5]), "cpu.base: every draw must lie in [0, 1]"),
    (lambda d: d["cpu"]["base"].update(value="high"), "cpu.base: value 'high' must be a number"),
    (lambda d: d["cpu"]["base"].update(value=[0.4, 0.2]), "must be a number, [low, high]"),
    (lambda d: d["cpu"]["base"].update(note="x"), "cpu.base has unknown key 'note'"),
    (lambda d: d["cpu"].update(load={"value": 1, "derived": "x"}), "cpu: unknown key 'load'"),
    (lambda d: d.pop("memory"), "required section 'memory' is missing"),
    (lambda d: d["memory"].pop("min_avail_mb"), "memory: required key 'min_avail_mb' is missing"),
    (lambda d: d["apps"]["browser"]["on_s"].update(value={"weibull": {"k": 1}}), "apps.browser.on_s: value"),
    (lambda d: d["apps"]["browser"]["on_s"].update(value=-3), "a duration must be positive"),
    (lambda d: d["battery"].update(start_above_saver_pct={"value": 1, "derived": "x"}),
     "battery needs exactly one of start_pct and start_above_saver_pct"),
    (lambda d: d.update(weather="rain"), "unknown key 'weather'"),
    (lambda d: d.update(needs_battery="yes"), "needs_battery must be true or false"),
    (lambda d: d.update(description=""), "'description' must be a non-empty string"),
])
def test_bad_scenarios_are_refused(mutate, match):
    doc = _doc()
    mutate(doc)
    with pytest.raises(ScenarioError, match=re.escape(match)):
        parse_scenario(doc, "office.yaml")


def test_clock_levels_must_descend_from_one():
    doc = _doc("commute-hot")
    doc["clock"]["levels"]["value"] = [0.9, 0.6]
    with pytest.raises(ScenarioError, match="descending list of clock fractions starting at 1"):
        parse_scenario(doc)
    doc["leg_order"] = ["outdoors", "moon"]
    doc["clock"]["levels"]["value"] = [1.0, 0.6]
    with pytest.raises(ScenarioError, match="leg_order must list names from legs"):
        parse_scenario(doc)


def test_overrides_replace_values_and_say_so():
    sc = load_scenario("office", {"apps": {"browser": {"cpu": [0.1, 0.45]}}, "cpu": {"base": 0.2}}, "my.yaml")
    assert sc.apps["browser"]["cpu"] == Dist("uniform", (0.1, 0.45), "derived: override in my.yaml")
    assert sc.sections["cpu"]["base"].args == (0.2,)
    with pytest.raises(ScenarioError, match="every draw must lie in"):
        load_scenario("office", {"cpu": {"base": 3}})


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ScenarioError, match="unknown scenario 'beach'; known: commute-hot, "):
        load_scenario("beach")
    with pytest.raises(ScenarioError, match="unknown workload 'x'"):
        load_workload("x")


def test_file_name_must_match(tmp_path):
    doc = _doc()
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError, match="name 'office' must match the file name 'other'"):
        load_scenario(tmp_path / "other.yaml")
    (tmp_path / "broken.yaml").write_text("name: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(tmp_path / "broken.yaml")


def test_bad_workloads_are_refused():
    doc = yaml.safe_load((paths.envs_dir() / "workloads" / "rpi4-vision.yaml").read_text())
    bad = copy.deepcopy(doc)
    bad["default_mode"] = "sprint"
    with pytest.raises(ScenarioError, match="default_mode 'sprint' is not one of the modes"):
        parse_workload(bad)
    bad = copy.deepcopy(doc)
    bad["modes"]["monitor"]["deadline_ms"]["value"] = [100, 200]
    with pytest.raises(ScenarioError, match="deadline_ms: must be a single number"):
        parse_workload(bad)
    bad = copy.deepcopy(doc)
    bad["modes"]["monitor"]["request_rate_hz"]["value"] = 0
    with pytest.raises(ScenarioError, match="every draw must lie in"):
        parse_workload(bad)


@pytest.mark.parametrize("files,match", [
    ([{"split": "valid", "scenario": "steady", "seed": 1, "duration_s": 10}], "split must be train or test"),
    ([{"split": "train", "scenario": "steady", "duration_s": 10}], "give seed"),
    ([{"split": "train", "scenario": "steady", "seed": -1, "duration_s": 10}], "give seed"),
    ([{"split": "train", "scenario": ["steady", "office"], "seed": 1, "duration_s": [10]}], "needs duration_s"),
    ([{"split": "train", "scenario": "steady", "seeds": [1, 1], "duration_s": 10}], "produced twice"),
    ([{"split": "train", "scenario": "steady", "seed": 1, "duration_s": 10, "colour": 1}], "unknown key 'colour'"),
])
def test_bad_recipes_are_refused(files, match):
    with pytest.raises(ScenarioError, match=match):
        parse_recipe({"name": "x", "device": "rpi4", "description": "d", "files": files})


def test_shipped_recipes_load():
    for n in names("datasets"):
        rc = load_recipe(n)
        assert rc.files and rc.period_s == 1.0 and rc.version == 2
