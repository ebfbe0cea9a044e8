"""Trace datasets: round trips, and every bad input refused with a TraceError naming file, line and column."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adascale_rl import cli
from adascale_rl.context import schema
from adascale_rl.context.traces import (
    Trace, TraceDataset, TraceError, format_value, load_dataset, load_trace, make_meta, parse_csv,
    read_manifest, save_dataset, sha256_file, trace_to_csv, validate_path, write_manifest,
)

COLS = ["t_s", "bg_cpu_util", "mem_avail_mb", "freq_cap_mhz", "plugged"]


def table(n=5, period=1.0, cols=COLS):
    rng = np.random.default_rng(n)
    data = {"t_s": np.arange(n) * period}
    for c in cols[1:]:
        f = schema.BY_NAME[c]
        if f.integral:
            data[c] = rng.integers(0, 2, n).astype(float)
        else:
            data[c] = rng.uniform(f.low, min(f.high, 1e4), n)
    return data


def meta(cols=COLS, period=1.0, **kw):
    args = dict(name="demo", version=1, device="rpi4", device_mem_total_mb=3792.0, period_s=period,
                source="simulated", how_made="made by the tests", columns=cols)
    args.update(kw)
    return make_meta(**args)


@pytest.fixture
def dataset(tmp_path) -> Path:
    splits = {"train": {"a": table(6), "b": table(4)}, "test": {"c": table(3)}}
    return save_dataset(tmp_path / "demo-v1", meta(), splits)


def assert_one_sentence(exc: TraceError):
    text = str(exc)
    assert "\n" not in text
    assert ". " not in exc.reason, f"more than one sentence: {exc.reason!r}"
    assert exc.reason and not exc.reason.endswith(".")


def raises_at(text, line, column, match, *, period=None, expected=None, file="f.csv") -> TraceError:
    with pytest.raises(TraceError) as info:
        parse_csv(text, file=file, period_s=period, expected_columns=expected)
    exc = info.value
    assert (exc.file, exc.line, exc.column) == (file, line, column), str(exc)
    assert match in exc.reason, exc.reason
    assert_one_sentence(exc)
    return exc


# --------------------------------------------------------------------------- round trips

def test_round_trip_gives_identical_arrays(dataset):
    ds = load_dataset(dataset)
    assert isinstance(ds, TraceDataset)
    assert ds.name == "demo-v1" and ds.device == "rpi4" and ds.period_s == 1.0 and ds.mem_total_mb == 3792.0
    assert [t.name for t in ds.train] == ["demo-v1/train/a.csv", "demo-v1/train/b.csv"]
    assert [len(t) for t in ds.train + ds.test] == [6, 4, 3]
    for trace, n in zip(ds.train + ds.test, (6, 4, 3)):
        want = table(n)
        assert trace.columns == COLS
        for c in COLS:
            assert np.array_equal(trace.data[c], want[c]), c  # exact, not approximately


def test_awkward_floats_survive_the_round_trip(tmp_path):
    cols = ["t_s", "bg_cpu_util", "mem_avail_mb"]
    data = {"t_s": np.arange(5) * 0.1, "bg_cpu_util": np.array([1 / 3, 1e-9, 0.1 + 0.2, 5e-324, 1.0]),
            "mem_avail_mb": np.array([9999999.999999, 1234567.1234567, 0.0, 2.5, 1e7])}
    save_dataset(tmp_path / "x-v1", meta(cols, period=0.1), {"train": {"a": data}})
    got = load_dataset(tmp_path / "x-v1").train[0].data
    for c in cols:
        assert np.array_equal(got[c], data[c]), c


def test_same_input_same_bytes(tmp_path, dataset):
    other = save_dataset(tmp_path / "again" / "demo-v1", meta(),
                         {"train": {"a": table(6), "b": table(4)}, "test": {"c": table(3)}})
    files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    for rel in files:
        assert (dataset / rel).read_bytes() == (other / rel).read_bytes(), rel
    # and saving what was loaded reproduces the files
    ds = load_dataset(dataset)
    third = save_dataset(tmp_path / "third-v1", ds.meta,
                         {s: {Path(t.name).stem: t.data for t in ts} for s, ts in ds.splits.items() if ts})
    for rel in files:
        assert (dataset / rel).read_bytes() == (third / rel).read_bytes(), rel


def test_manifest_is_sha256sum_compatible(dataset):
    entries = read_manifest(dataset)
    assert set(entries) == {"train/a.csv", "train/b.csv", "test/c.csv"}
    for rel, digest in entries.items():
        assert digest == hashlib.sha256((dataset / rel).read_bytes()).hexdigest() == sha256_file(dataset / rel)
    for line in (dataset / "MANIFEST").read_text().splitlines():
        digest, rel = line.split("  ")
        assert len(digest) == 64 and rel in entries


def test_format_value_is_deterministic_and_exact():
    assert format_value(3.0) == "3" and format_value(-0.0) == "0" and format_value(np.float64(0.5)) == "0.5"
    for v in (1 / 3, 1e-7, 123456.789, 1e20, 2.0 ** 60 + 0.5):
        assert float(format_value(v)) == v
    assert format_value(math.nan) == "nan" and format_value(math.inf) == "inf"


def test_trace_defaults_window_and_resample(dataset):
    tr = load_dataset(dataset).train[0]
    assert np.all(tr.column("ambient_temp_c") == 25.0)
    assert np.all(tr.column("deadline_ms") == schema.DEFAULTS["deadline_ms"])
    assert np.all(np.isinf(tr.column("freq_cap_mhz") if "freq_cap_mhz" not in tr.data else np.inf))
    assert tr.duration_s == 6.0 and tr.mem_total_mb == 3792.0 and tr.device == "rpi4"
    w = tr.window(2, 3)
    assert len(w) == 3 and np.array_equal(w.data["t_s"], [2.0, 3.0, 4.0])
    half = tr.resample(0.5)
    assert len(half) == 11 and half.period_s == 0.5
    assert set(np.unique(half.data["plugged"])) <= {0.0, 1.0}
    assert np.allclose(half.data["bg_cpu_util"][::2], tr.data["bg_cpu_util"])
    with pytest.raises(ValueError):
        tr.resample(0)
    bare = Trace("x", 1.0, {"t_s": np.arange(3.0), "bg_cpu_util": np.zeros(3), "mem_avail_mb": np.ones(3)})
    assert np.all(np.isinf(bare.column("freq_cap_mhz")))


def test_bg_runnable_absent_is_nan_present_is_the_data(tmp_path):
    """Without the column, column('bg_runnable') is NaN ("absent: estimate it"); with it, the values read."""
    bare = Trace("x", 1.0, {"t_s": np.arange(4.0), "bg_cpu_util": np.full(4, 0.5), "mem_avail_mb": np.ones(4)})
    assert not bare.has("bg_runnable") and bare.has("bg_cpu_util")
    col = bare.column("bg_runnable")
    assert col.dtype == np.float64 and col.shape == (4,) and np.all(np.isnan(col))
    with pytest.raises(KeyError, match="unknown context field 'bg_runnabel'"):
        bare.has("bg_runnabel")
    cols = ["t_s", "bg_cpu_util", "bg_runnable", "mem_avail_mb"]
    data = {"t_s": np.arange(3.0), "bg_cpu_util": np.array([0.2, 1.0, 1.0]),
            "bg_runnable": np.array([0.4, 2.0, 4.25]), "mem_avail_mb": np.full(3, 100.0)}
    save_dataset(tmp_path / "rq-v1", meta(cols), {"train": {"a": data}})
    (tr,) = load_dataset(tmp_path / "rq-v1").train
    assert tr.has("bg_runnable") and tr.columns == cols
    assert np.array_equal(tr.column("bg_runnable"), [0.4, 2.0, 4.25])
    assert np.allclose(tr.resample(0.5).column("bg_runnable"), [0.4, 1.2, 2.0, 3.125, 4.25])


@pytest.mark.parametrize("cell,match", [("nan", "value nan is not a finite number"),
                                        ("-1", "value -1 is out of range [0, 4096] threads"),
                                        ("-0.01", "value -0.01 is out of range [0, 4096] threads"),
                                        ("5000", "value 5000 is out of range [0, 4096] threads"),
                                        ("", "'' is not a number")])
def test_a_bad_bg_runnable_cell_names_file_line_and_column(cell, match):
    text = f"t_s,bg_cpu_util,bg_runnable,mem_avail_mb\n0,0.5,1,10\n1,1,{cell},10\n"
    raises_at(text, 3, "bg_runnable", match)


def test_per_file_meta_is_attached(tmp_path):
    m = meta(files={"train/a.csv": {"scenario": "office", "seed": 3}})
    save_dataset(tmp_path / "d-v1", m, {"train": {"a": table(3)}})
    assert load_dataset(tmp_path / "d-v1").train[0].meta == {"scenario": "office", "seed": 3}


def test_crlf_bom_and_trailing_blank_lines_are_accepted():
    text = "\ufefft_s,bg_cpu_util,mem_avail_mb\r\n0,0.5,100\r\n1,0.25,90\r\n\r\n\n"
    data = parse_csv(text, file="f.csv")
    assert np.array_equal(data["bg_cpu_util"], [0.5, 0.25])


# --------------------------------------------------------------------------- bad files, one class each

H = "t_s,bg_cpu_util,mem_avail_mb\n"


@pytest.mark.parametrize("text,line,column,match", [
    ("", 1, None, "the file is empty"),
    ("  \n\n", 1, None, "the file is empty"),
    (H, 2, None, "header but no data rows"),
    ("t_s,mem_avail_mb\n0,1\n", 1, "bg_cpu_util", "required column is missing"),
    ("t_s,bg_cpu_util,mem_avail_mb,cpu_load\n0,0,1,0\n", 1, "cpu_load", "unknown column"),
    ("t_s,bg_cpu_util,mem_avail_mb,bg_cpu_util\n0,0,1,0\n", 1, "bg_cpu_util", "appears twice"),
    (H + "0,0.5,100\n1,abc,100\n", 3, "bg_cpu_util", "'abc' is not a number"),
    (H + "0,0.5,100\n1,,100\n", 3, "bg_cpu_util", "'' is not a number"),
    (H + "0,0.5,0x10\n", 2, "mem_avail_mb", "is not a number"),
    (H + "0,0.5,1_000\n", 2, "mem_avail_mb", "is not a number"),
    (H + "0,nan,100\n", 2, "bg_cpu_util", "not a finite number"),
    (H + "0,0.5,inf\n", 2, "mem_avail_mb", "not a finite number"),
    (H + "0,0.5,-Infinity\n", 2, "mem_avail_mb", "not a finite number"),
    (H + "0,1.5,100\n", 2, "bg_cpu_util", "out of range [0, 1] fraction"),
    (H + "0,0.5,-1\n", 2, "mem_avail_mb", "out of range"),
    (H + "-1,0.5,100\n", 2, "t_s", "out of range"),
    ("t_s,bg_cpu_util,mem_avail_mb,plugged\n0,0.5,100,0.5\n", 2, "plugged", "must be 0 or 1"),
    (H + "0,0.5,100\n1,0.5,100\n1,0.5,100\n", 4, "t_s", "does not increase"),
    (H + "0,0.5,100\n1,0.5,100\n0.5,0.5,100\n", 4, "t_s", "does not increase"),
    (H + "0,0.5,100\n1,0.5,100\n2.5,0.5,100\n", 4, "t_s", "irregular"),
    (H + "0,0.5,100\n1,0.5\n", 3, None, "expected 3 cells, found 2"),
    (H + "0,0.5,100,7\n", 2, None, "expected 3 cells, found 4"),
    (H + "0,0.5,100\n\n1,0.5,100\n", 3, None, "blank line inside the data"),
    (H + '0,0.5,"100\n', 2, None, "malformed CSV"),
])
def test_bad_text_is_refused_at_the_right_place(text, line, column, match):
    raises_at(text, line, column, match)


def test_declared_period_is_enforced_from_the_first_step():
    raises_at(H + "0,0.5,100\n2,0.5,100\n", 3, "t_s", "step 2 s where the period is 1 s", period=1.0)
    # within the 5 % tolerance recorders are allowed
    parse_csv(H + "0,0.5,100\n1.04,0.5,100\n", file="f.csv", period_s=1.0)


def test_header_must_match_the_declared_columns():
    exc = raises_at(H + "0,0.5,100\n", 1, "bg_cpu_util", "does not match the columns",
                    expected=["t_s", "plugged"])
    assert "schema.json" in exc.reason
    raises_at(H + "0,0.5,100\n", 1, None, "does not match",
              expected=["t_s", "bg_cpu_util", "mem_avail_mb", "plugged"])


def test_file_that_is_not_utf8(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(H.encode() + b"0,0.5,100\n1,0.5,\xff\n")
    with pytest.raises(TraceError) as info:
        load_trace(p)
    assert (info.value.file, info.value.line) == (str(p), 3) and "UTF-8" in info.value.reason


def test_single_file_validation(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text(H + "0,0.5,100\n0.5,0.25,100\n")
    assert validate_path(p) == f"{p}: valid trace, 2 rows at 0.5 s, columns t_s,bg_cpu_util,mem_avail_mb"
    with pytest.raises(TraceError, match="no such file or folder"):
        validate_path(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- bad datasets

def refused(root, file, match, line=None, column=None) -> TraceError:
    with pytest.raises(TraceError) as info:
        load_dataset(root)
    exc = info.value
    assert exc.file == str(file), str(exc)
    assert (exc.line, exc.column) == (line, column), str(exc)
    assert match in exc.reason, exc.reason
    assert_one_sentence(exc)
    return exc


def test_checksum_mismatch(dataset):
    p = dataset / "train" / "b.csv"
    p.write_text(p.read_text().replace("\n1,", "\n1.0,", 1))
    refused(dataset, p, "checksum mismatch")


def test_file_not_in_manifest(dataset):
    shutil.copy(dataset / "train" / "a.csv", dataset / "test" / "extra.csv")
    refused(dataset, dataset / "test" / "extra.csv", "not listed in MANIFEST")


def test_listed_but_missing(dataset):
    (dataset / "test" / "c.csv").unlink()
    refused(dataset, dataset / "test" / "c.csv", "listed in MANIFEST but missing")


def test_missing_manifest_and_schema(dataset, tmp_path):
    (dataset / "MANIFEST").unlink()
    refused(dataset, dataset / "MANIFEST", "no MANIFEST")
    (dataset / "schema.json").unlink()
    refused(dataset, dataset / "schema.json", "no schema.json")
    refused(tmp_path / "nothing", tmp_path / "nothing", "is not a dataset folder")


@pytest.mark.parametrize("line,match", [
    ("not a manifest line", "expected '<sha256>  <relative path>'"),
    ("0" * 64 + "  ../../etc/passwd", "leaves the dataset folder"),
    ("0" * 64 + "  /etc/passwd", "leaves the dataset folder"),
    ("A" * 64 + "  train/a.csv", "expected '<sha256>"),
])
def test_malformed_manifest(dataset, line, match):
    m = dataset / "MANIFEST"
    m.write_text(m.read_text() + line + "\n")
    refused(dataset, m, match, line=4)


def test_manifest_listing_a_file_twice(dataset):
    m = dataset / "MANIFEST"
    first = m.read_text().splitlines()[0]
    m.write_text(m.read_text() + first + "\n")
    refused(dataset, m, "listed twice", line=4)


def test_no_csv_files(tmp_path, dataset):
    for p in dataset.rglob("*.csv"):
        p.unlink()
    write_manifest(dataset, {})
    refused(dataset, dataset, "no CSV files")


def _edit_meta(root: Path, **changes):
    m = json.loads((root / "schema.json").read_text())
    for k, v in changes.items():
        if v is KeyError:
            del m[k]
        else:
            m[k] = v
    (root / "schema.json").write_text(json.dumps(m))


@pytest.mark.parametrize("changes,match", [
    ({"schema_version": 2}, "unknown schema version 2"),
    ({"schema_version": True}, "unknown schema version True"),
    ({"format": "csv"}, "format is 'csv'"),
    ({"source": "guessed"}, "source is 'guessed'"),
    ({"period_s": 0}, "period_s must be a positive number"),
    ({"period_s": "1"}, "period_s must be a positive number"),
    ({"device_mem_total_mb": -5}, "device_mem_total_mb must be a positive number"),
    ({"version": 0}, "version must be a positive integer"),
    ({"version": True}, "version must be a positive integer"),
    ({"licence": ""}, "licence must be a non-empty string"),
    ({"device": None}, "device must be a non-empty string"),
    ({"how_made": KeyError}, "required key 'how_made' is missing"),
    ({"files": []}, "files must be an object"),
    ({"columns": []}, "columns must be a non-empty list"),
    ({"columns": ["t_s"]}, "must be an object with name and unit"),
    ({"columns": [{"name": "t_s", "unit": "ms"}]}, "has unit 'ms', the schema says 's'"),
    ({"columns": [{"name": "t_s", "unit": "s"}, {"name": "load", "unit": "%"}]}, "unknown column 'load'"),
    ({"columns": [{"name": "t_s", "unit": "s"}, {"name": "t_s", "unit": "s"}]}, "listed twice"),
    ({"columns": [{"name": "t_s", "unit": "s"}, {"name": "bg_cpu_util", "unit": "fraction"}]},
     "required column 'mem_avail_mb' is not in columns"),
])
def test_bad_schema_json(dataset, changes, match):
    _edit_meta(dataset, **changes)
    refused(dataset, dataset / "schema.json", match)


def test_schema_json_that_is_not_json(dataset):
    (dataset / "schema.json").write_text('{\n  "format": "adascale-trace-dataset",\n  "name": oops\n}\n')
    refused(dataset, dataset / "schema.json", "is not valid JSON", line=3)
    (dataset / "schema.json").write_text("[1, 2]\n")
    refused(dataset, dataset / "schema.json", "must hold a JSON object", line=1)


def test_header_differs_from_schema_columns(dataset):
    cols = ["t_s", "bg_cpu_util", "mem_avail_mb", "freq_cap_mhz"]
    _edit_meta(dataset, columns=[{"name": c, "unit": schema.BY_NAME[c].unit} for c in cols])
    refused(dataset, dataset / "train" / "a.csv", "does not match the columns", line=1, column="plugged")


def test_bad_row_in_one_file_loads_nothing(dataset):
    p = dataset / "train" / "b.csv"
    lines = p.read_text().splitlines(keepends=True)
    cells = lines[3].split(",")
    cells[1] = "1.5"
    lines[3] = ",".join(cells)
    p.write_text("".join(lines))
    write_manifest(dataset, {**read_manifest(dataset), "train/b.csv": sha256_file(p)})
    refused(dataset, p, "out of range", line=4, column="bg_cpu_util")


def test_cli_validate_reports_each_path(dataset, tmp_path, capsys):
    assert cli.main(["traces", "validate", str(dataset)]) == 0
    assert "valid simulated dataset demo-v1 for rpi4: 2 train + 1 test traces, 13 rows at 1 s" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text(H + "0,2,100\n")
    assert cli.main(["traces", "validate", str(dataset), str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"invalid: {bad}, line 2, column 'bg_cpu_util': value 2 is out of range [0, 1] fraction"


# --------------------------------------------------------------------------- save_dataset refuses bad tables

def test_save_refuses_bad_values_and_writes_nothing(tmp_path):
    data = table(5)
    data["bg_cpu_util"] = data["bg_cpu_util"].copy()
    data["bg_cpu_util"][3] = np.nan
    with pytest.raises(TraceError) as info:
        save_dataset(tmp_path / "d-v1", meta(), {"train": {"ok": table(4), "bad": data}})
    assert (info.value.file, info.value.line, info.value.column) == ("train/bad.csv", 5, "bg_cpu_util")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_mismatched_tables(tmp_path):
    data = table(5)
    del data["plugged"]
    with pytest.raises(TraceError, match="no values for this column") as info:
        save_dataset(tmp_path / "d-v1", meta(), {"train": {"a": data}})
    assert info.value.column == "plugged"
    data = table(5)
    data["ambient_temp_c"] = np.zeros(5)
    with pytest.raises(TraceError, match="does not declare"):
        save_dataset(tmp_path / "d-v1", meta(), {"train": {"a": data}})
    data = table(5)
    data["plugged"] = data["plugged"][:3]
    with pytest.raises(TraceError, match="different lengths"):
        save_dataset(tmp_path / "d-v1", meta(), {"train": {"a": data}})
    with pytest.raises(ValueError, match="split must be one of"):
        save_dataset(tmp_path / "d-v1", meta(), {"valid": {"a": table(3)}})
    with pytest.raises(ValueError, match="plain file stem"):
        save_dataset(tmp_path / "d-v1", meta(), {"train": {"../a": table(3)}})
    with pytest.raises(ValueError, match="at least one trace"):
        save_dataset(tmp_path / "d-v1", meta(), {"train": {}})
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_whole_folder(dataset):
    with pytest.raises(FileExistsError):
        save_dataset(dataset, meta(), {"train": {"z": table(2)}})
    save_dataset(dataset, meta(), {"train": {"z": table(2)}}, overwrite=True)
    ds = load_dataset(dataset)
    assert [t.name for t in ds.train] == ["demo-v1/train/z.csv"] and ds.test == []
    assert not any(p.name.startswith(".") for p in dataset.parent.iterdir())


# --------------------------------------------------------------------------- property-based

@st.composite
def valid_tables(draw):
    optional = draw(st.lists(st.sampled_from(schema.OPTIONAL), unique=True, max_size=len(schema.OPTIONAL)))
    columns = [n for n in schema.NAMES if n in schema.REQUIRED or n in optional]
    n = draw(st.integers(1, 8))
    period = draw(st.sampled_from([0.1, 0.5, 1.0, 2.0, 60.0]))
    t0 = draw(st.sampled_from([0.0, 0.0, 10.0, 12345.0]))
    data = {"t_s": t0 + period * np.arange(n)}
    for c in columns[1:]:
        f = schema.BY_NAME[c]
        if f.integral:
            values = st.sampled_from([0.0, 1.0])
        else:
            values = st.floats(f.low, f.high, allow_nan=False, allow_infinity=False)
        data[c] = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=float)
    return columns, period, data


def _lines(columns, data):
    return trace_to_csv(columns, data).splitlines(keepends=True)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_tables())
def test_property_valid_tables_round_trip(case):
    columns, period, data = case
    text = trace_to_csv(columns, data)
    got = parse_csv(text, file="p.csv", period_s=period, expected_columns=columns)
    assert list(got) == columns
    for c in columns:
        assert np.array_equal(got[c], data[c]), c
    assert trace_to_csv(columns, got) == text


CELL_CORRUPTIONS = ["text", "empty", "nan", "inf", "-inf", "too_high", "too_low", "half_flag"]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_tables(), st.data())
def test_property_one_bad_cell_is_reported_exactly(case, draw):
    columns, period, data = case
    n = len(data["t_s"])
    row = draw.draw(st.integers(0, n - 1), label="row")
    col = draw.draw(st.sampled_from(columns), label="column")
    f = schema.BY_NAME[col]
    kinds = [k for k in CELL_CORRUPTIONS if k != "half_flag" or f.integral]
    kind = draw.draw(st.sampled_from(kinds), label="kind")
    bad = {
        "text": draw.draw(st.sampled_from(["abc", "1..2", "0x1A", "--1", "1e", "one", "1_0", "#"])),
        "empty": " ",
        "nan": draw.draw(st.sampled_from(["nan", "NaN", " nan "])),
        "inf": draw.draw(st.sampled_from(["inf", "Infinity", "1e999"])),
        "-inf": "-inf",
        "too_high": format_value(f.high * 2 + 1),
        "too_low": format_value(f.low - abs(f.low) - 1),
        "half_flag": "0.5",
    }[kind]
    lines = _lines(columns, data)
    cells = lines[row + 1].rstrip("\n").split(",")
    cells[columns.index(col)] = bad
    lines[row + 1] = ",".join(cells) + "\n"
    result = None
    with pytest.raises(TraceError) as info:
        result = parse_csv("".join(lines), file="p.csv", period_s=period, expected_columns=columns)
    assert result is None
    exc = info.value
    assert (exc.file, exc.line, exc.column) == ("p.csv", row + 2, col), (kind, str(exc))
    expected = {"text": "is not a number", "empty": "is not a number", "nan": "not a finite number",
                "inf": "not a finite number", "-inf": "not a finite number", "too_high": "out of range",
                "too_low": "out of range", "half_flag": "must be 0 or 1"}[kind]
    assert expected in exc.reason
    assert_one_sentence(exc)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_tables(), st.data())
def test_property_one_bad_row_is_reported_exactly(case, draw):
    columns, period, data = case
    n = len(data["t_s"])
    kinds = ["missing_cell", "extra_cell"] + (["blank_before", "repeat_time", "back_time", "skip_time"] if n > 1 else [])
    kind = draw.draw(st.sampled_from(kinds), label="kind")
    row = draw.draw(st.integers(1 if kind.endswith("time") or kind == "blank_before" else 0, n - 1), label="row")
    lines = _lines(columns, data)
    cells = lines[row + 1].rstrip("\n").split(",")
    column = None
    t = data["t_s"]
    if kind == "missing_cell":
        del cells[draw.draw(st.integers(0, len(cells) - 1))]
        match = "cells, found"
    elif kind == "extra_cell":
        cells.insert(draw.draw(st.integers(0, len(cells))), "0")
        match = "cells, found"
    elif kind == "blank_before":
        lines.insert(row + 1, "\n")
        match = "blank line"
    else:
        column = "t_s"
        new_t = {"repeat_time": t[row - 1], "back_time": t[row - 1] - period / 2 if t[row - 1] >= period else None,
                 "skip_time": t[row - 1] + 1.5 * period}[kind]
        if new_t is None:  # cannot go back below 0 without leaving the range; go forward instead
            new_t, kind = t[row - 1] + 1.5 * period, "skip_time"
        cells[0] = format_value(new_t)
        match = "does not increase" if kind != "skip_time" else "irregular"
    if kind != "blank_before":
        lines[row + 1] = ",".join(cells) + "\n"
    result = None
    with pytest.raises(TraceError) as info:
        result = parse_csv("".join(lines), file="p.csv", period_s=period, expected_columns=columns)
    assert result is None
    exc = info.value
    assert (exc.line, exc.column) == (row + 2, column), (kind, str(exc))
    assert match in exc.reason
    assert_one_sentence(exc)


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(valid_tables(), st.data())
def test_property_datasets_are_all_or_nothing(tmp_path_factory, case, draw):
    columns, period, data = case
    root = tmp_path_factory.mktemp("ds") / "p-v1"
    m = meta(columns, period=period)
    save_dataset(root, m, {"train": {"good": data}, "test": {"other": data}})
    assert np.array_equal(load_dataset(root).test[0].data["t_s"], data["t_s"])
    # corrupt one cell of the test file, keep MANIFEST consistent: the parse error must surface
    p = root / "test" / "other.csv"
    lines = p.read_text().splitlines(keepends=True)
    row = draw.draw(st.integers(0, len(data["t_s"]) - 1))
    col = draw.draw(st.sampled_from(columns))
    cells = lines[row + 1].rstrip("\n").split(",")
    cells[columns.index(col)] = "oops"
    lines[row + 1] = ",".join(cells) + "\n"
    p.write_text("".join(lines))
    write_manifest(root, {**read_manifest(root), "test/other.csv": sha256_file(p)})
    with pytest.raises(TraceError) as info:
        load_dataset(root)
    assert (info.value.file, info.value.line, info.value.column) == (str(p), row + 2, col)
