"""selector.json validation: every damaged document ends in the declared error, and the selector survives it."""

from __future__ import annotations

import copy
import json
import logging
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adascale_rl.runtime import Selector, schema
from test_selector import FakeMonitor

JUNK = [None, True, -1, 0, 1.5, 1e308, "x", "", [], {}, [1, 2], {"a": 1}]


def _paths(doc, prefix=(), depth=4):
    """Key paths into a JSON document (dict keys, list indices), up to ``depth`` deep."""
    out = []
    if depth == 0:
        return out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,), depth - 1))
    return out


def _mutate(doc, path, op, junk):
    d = copy.deepcopy(doc)
    node = d
    for k in path[:-1]:
        node = node[k]
    if op == "delete":
        if isinstance(node, dict):
            del node[path[-1]]
        else:
            node.pop(path[-1])
    else:
        node[path[-1]] = junk
    return d


@pytest.fixture(scope="module")
def doc_and_paths(exported):
    doc = json.loads((exported["prior"] / "selector.json").read_text())
    return doc, _paths(doc)


def test_the_exported_document_is_valid(doc_and_paths):
    schema.validate(doc_and_paths[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_damaged_document_is_valid_or_a_selector_format_error(doc_and_paths, data):
    doc, paths = doc_and_paths
    path = data.draw(st.sampled_from(paths))
    op = data.draw(st.sampled_from(["delete", "set"]))
    junk = data.draw(st.sampled_from(JUNK))
    bad = _mutate(doc, path, op, junk)
    try:
        schema.validate(bad)
    except schema.SelectorFormatError as exc:
        msg = str(exc)
        assert msg.startswith("selector.json: ") and "\n" not in msg


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_selector_survives_any_damaged_document(exported, doc_and_paths, tmp_path_factory, data):
    """Never an exception: a catalog variant (the policy's or the fallback's), or None without a catalog;
    at most one warning at load."""
    doc, paths = doc_and_paths
    path = data.draw(st.sampled_from(paths))
    bad = _mutate(doc, path, data.draw(st.sampled_from(["delete", "set"])), data.draw(st.sampled_from(JUNK)))
    folder = tmp_path_factory.mktemp("damaged")
    for f in ("policy.npz", "policy.onnx"):
        shutil.copy(exported["prior"] / f, folder / f)
    (folder / "selector.json").write_text(json.dumps(bad))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("adascale_rl.runtime")
    log.addHandler(handler)
    try:
        sel = Selector.load(folder, monitor=FakeMonitor())
        sel.set_mode(rate_hz=8, deadline_ms=150)
        v = sel.select()
    finally:
        log.removeHandler(handler)
    ids = [x["id"] for x in doc["variants"]]
    assert v is None or v in ids or v in sel.variants
    assert len([r for r in records if r.levelno == logging.WARNING]) <= 1
