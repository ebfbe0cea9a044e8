"""docs/TRACES.md stays in step with the schema, the scenario files and the shipped datasets."""

import re
from pathlib import Path

import pytest

from adascale_rl import paths
from adascale_rl.context import schema
from adascale_rl.context.scenarios import names
from adascale_rl.context.traces import load_dataset

DOC = Path(__file__).resolve().parents[2] / "docs" / "TRACES.md"
pytestmark = pytest.mark.skipif(not DOC.exists(), reason="docs/ is not installed with the package")


def _row(name: str) -> list[str]:
    for line in DOC.read_text().splitlines():
        if line.startswith(f"| `{name}` |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"docs/TRACES.md has no table row for {name}")


@pytest.mark.parametrize("f", schema.FIELDS, ids=lambda f: f.name)
def test_schema_table_matches_the_schema(f):
    _, unit, rng, req, meaning = _row(f.name)
    assert unit == f.unit
    assert rng.startswith(f"[{f.low:g}, {f.high:g}]".replace("1e+09", "1e9").replace("1e+07", "1e7"))
    if f.required:
        assert req == "required"
    elif f.default is None:
        assert f.absent_means in req
    else:
        assert req == f"default {f.default:g}"
    assert meaning.split(";")[0] in f.doc


def test_every_scenario_and_workload_is_documented():
    for n in names("scenarios") + names("workloads"):
        _row(n)


@pytest.mark.parametrize("name", ["rpi4-sim-v2", "jetson-nano-sim-v2", "pixel4-sim-v2", "host-recorded-v2"])
def test_shipped_dataset_table_is_true(name):
    ds = load_dataset(paths.traces_dir() / name)
    _, source, device, train, test, _ = _row(name)
    assert source == ds.meta["source"] and device == ds.device
    for cell, traces in ((train, ds.train), (test, ds.test)):
        n, rows = re.match(r"(\d+) traces?, ([\d ]+) rows", cell).groups()
        assert int(n) == len(traces) and int(rows.replace(" ", "")) == sum(len(t) for t in traces)
