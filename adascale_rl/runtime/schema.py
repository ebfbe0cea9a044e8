"""``selector.json``: what an exported folder holds, and its validation.

An exported folder (``adascale-rl export``) is everything an app needs to choose a
variant, and nothing that can run code::

    selector.json    this document: format, versions, the environment, where it came from
                     (sha256 of the model, statistics, catalog and device files), the
                     observation's fields in order (unit, bounds, how each is computed),
                     the actions, the catalog and the device preset (so the device needs
                     no other file), the policy's constants, the fallback rule, and the
                     sha256 of every other file of the folder
    policy.npz       the network's weights, normalisation statistics and the check
                     decisions (numpy arrays only, read with ``allow_pickle=False``)
    policy.onnx      the same forward as an ONNX graph (opset 17): inputs ``observation``
                     (float32, batch x size) and ``action_mask`` (bool, batch x actions);
                     outputs ``action`` (int64) and ``logits`` (float64, before the mask)

A heuristic's folder has selector.json only. :func:`validate` checks a document field by
field; every problem is a :class:`SelectorFormatError` naming the field in one sentence.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from typing import Any, Mapping

FORMAT = "adascale-selector"
#: 2: the device's and the policy table's scheduler may carry ``wake_cv`` (the wake-up cost's spread), which a
#: reader of version 1 does not know; a version-1 folder is read as the spread's default
#: 3: the same for ``corun_stretch`` (the service's lengthening beside co-runners); an earlier folder is read as 0
FORMAT_VERSION = 3
READS_VERSIONS = (1, 2, 3)
SELECTOR_JSON = "selector.json"
POLICY_NPZ = "policy.npz"
POLICY_ONNX = "policy.onnx"
#: heuristics an exported folder may name (the deployable ones: they read only what a device knows)
HEURISTICS = ("static-largest", "static-smallest", "best-fixed", "greedy", "greedy-kalman", "greedy-hysteresis",
              "planner")
#: the default fallback rule: the most accurate variant whose profiled latency x margin fits the budget
FALLBACK_RULE = "most-accurate-within-budget"
DEFAULT_FALLBACK_MARGIN = 1.5
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: how far the exported logits may be from the Stable-Baselines3 policy's (and the check decisions' from a
#: replay), relative to :func:`logit_scale`. Why relative: the prior's 1 / temperature puts the logits in the
#: hundreds, where float32 itself resolves only ~3e-5, so an absolute 1e-5 is below the reference's own
#: rounding (docs/DEPLOY.md, "Parity").
LOGIT_RTOL = 1e-5


def logit_scale(logits) -> Any:
    """Per row, the scale logit deviations are measured against: max(1, max |logit|)."""
    import numpy as np

    return np.maximum(1.0, np.max(np.abs(np.asarray(logits, dtype=np.float64)), axis=-1))


def decisions_agree(actions, reference, ref_logits, loaded, rtol: float = LOGIT_RTOL):
    """Per row, whether two canonical actions are the same decision, or a tie within ``rtol`` x the logit scale
    in ``ref_logits`` (keep's logit is the larger of keep's and the loaded variant's: they are one decision).
    Where float rounding alone can flip the argmax, it may."""
    import numpy as np

    a, r = np.asarray(actions), np.asarray(reference)
    lg = np.asarray(ref_logits, dtype=np.float64)
    rows = np.arange(len(lg))
    keep = np.maximum(lg[:, 0], lg[rows, np.asarray(loaded) + 1])

    def value(x):
        return np.where(x == 0, keep, lg[rows, x])

    return (a == r) | (np.abs(value(a) - value(r)) <= rtol * logit_scale(lg))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SelectorFormatError(ValueError):
    """A selector.json that does not follow :data:`FORMAT` version :data:`FORMAT_VERSION`; names the field."""


def _fail(field: str, msg: str) -> SelectorFormatError:
    return SelectorFormatError(f"selector.json: {field}: {msg}")


def _get(doc: Mapping, key: str, where: str, kind: type | tuple, *, optional: bool = False):
    if not isinstance(doc, Mapping):
        raise _fail(where, "must be an object")
    if key not in doc:
        if optional:
            return None
        raise _fail(f"{where}.{key}" if where else key, "required field is missing")
    v = doc[key]
    if optional and v is None:
        return None
    name = f"{where}.{key}" if where else key
    if kind is float:
        if not _number(v):
            raise _fail(name, f"must be a finite number, not {v!r}")
        return float(v)
    if kind is int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise _fail(name, f"must be a whole number, not {v!r}")
        return v
    if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
        want = {str: "a string", dict: "an object", list: "a list", bool: "true or false"}.get(kind, str(kind))
        raise _fail(name, f"must be {want}, not {type(v).__name__}")
    return v


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _sha(v: Any, name: str) -> None:
    if v is not None and not (isinstance(v, str) and _SHA256.match(v)):
        raise _fail(name, "must be a sha256 as 64 lower-case hex digits")


def validate(doc: Any) -> dict:
    """Check a parsed selector.json; returns it unchanged. The format and version first, so a document from
    another version is named as such before anything else is checked."""
    if not isinstance(doc, Mapping):
        raise _fail("top level", "must be a JSON object")
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise _fail("format", f"is {fmt!r}, not {FORMAT!r}: not an exported selector")
    version = doc.get("format_version")
    if version not in READS_VERSIONS or isinstance(version, bool):
        raise _fail("format_version", f"is {version!r}; this adascale-rl reads versions "
                                      f"{', '.join(map(str, READS_VERSIONS))} (export the controller again with this "
                                      f"version)")
    _get(doc, "adascale_rl_version", "", str)
    env = _get(doc, "env", "", dict)
    for k in ("id", "name", "reward"):
        _get(env, k, "env", str)
    _get(env, "reward_weights", "env", dict)
    if not _get(env, "period_s", "env", float) > 0:
        raise _fail("env.period_s", "must be > 0 seconds")
    src = _get(doc, "source", "", dict)
    kind = _get(src, "kind", "source", str)
    if kind not in ("ppo", "heuristic"):
        raise _fail("source.kind", f"must be 'ppo' or 'heuristic', not {kind!r}")
    for k in ("model_sha256", "vecnormalize_sha256", "catalog_sha256", "device_sha256"):
        _sha(src.get(k), f"source.{k}")
    catalog = _get(doc, "catalog", "", dict)
    _get(doc, "device", "", dict)
    n = len(_get(catalog, "variants", "catalog", list))
    obs = _get(doc, "observation", "", dict)
    size = _get(obs, "size", "observation", int)
    fields = _get(obs, "fields", "observation", list)
    if len(fields) != size:
        raise _fail("observation.fields", f"lists {len(fields)} fields for an observation of size {size}")
    for i, f in enumerate(fields):
        where = f"observation.fields[{i}]"
        if _get(f, "index", where, int) != i:
            raise _fail(f"{where}.index", f"must be {i}")
        for k in ("name", "unit", "doc"):
            _get(f, k, where, str)
        lo, hi = _get(f, "low", where, float), _get(f, "high", where, float)
        if not lo < hi:
            raise _fail(where, f"low {lo:g} must be below high {hi:g}")
    actions = _get(doc, "actions", "", list)
    if len(actions) != n + 1 or not all(isinstance(a, str) for a in actions):
        raise _fail("actions", f"must name keep and one switch per variant ({n + 1} strings)")
    variants = _get(doc, "variants", "", list)
    if len(variants) != n:
        raise _fail("variants", f"lists {len(variants)} variants but the catalog has {n}")
    for i, v in enumerate(variants):
        for k in ("accuracy", "latency_ms", "peak_mem_mb"):
            _get(v, k, f"variants[{i}]", float)
        _get(v, "id", f"variants[{i}]", str)
    policy = _get(doc, "policy", "", dict)
    pk = _get(policy, "kind", "policy", str)
    if pk == "network":
        _validate_network(policy, size, n)
    elif pk == "heuristic":
        name = _get(policy, "name", "policy", str)
        if name not in HEURISTICS:
            raise _fail("policy.name", f"{name!r} is not a deployable heuristic ({', '.join(HEURISTICS)})")
        params = _get(policy, "params", "policy", dict)
        for k, v in params.items():
            if not (_number(v) or isinstance(v, str)):
                raise _fail(f"policy.params.{k}", f"must be a number or a variant id, not {v!r}")
    else:
        raise _fail("policy.kind", f"must be 'network' or 'heuristic', not {pk!r}")
    fb = _get(doc, "fallback", "", dict)
    if _get(fb, "rule", "fallback", str) != FALLBACK_RULE:
        raise _fail("fallback.rule", f"must be {FALLBACK_RULE!r}")
    if not _get(fb, "margin", "fallback", float) >= 1.0:
        raise _fail("fallback.margin", "must be a number >= 1")
    files = _get(doc, "files", "", dict)
    for name, sha in files.items():
        if name not in (POLICY_NPZ, POLICY_ONNX):
            raise _fail("files", f"names {name!r}; a folder holds only {POLICY_NPZ} and {POLICY_ONNX}")
        _sha(sha, f"files.{name}")
    if pk == "network" and POLICY_NPZ not in files:
        raise _fail("files", f"a network policy needs the sha256 of {POLICY_NPZ}")
    return dict(doc)


def _validate_network(policy: Mapping, size: int, n: int) -> None:
    from adascale_rl.runtime.numpy_policy import ACTIVATIONS

    slack = _get(policy, "slack", "policy", bool)
    net = _get(policy, "net", "policy", dict)
    act = _get(net, "activation", "policy.net", str)
    if act not in ACTIVATIONS:
        raise _fail("policy.net.activation", f"{act!r} is not supported ({', '.join(ACTIVATIONS)})")
    hidden = _get(net, "hidden", "policy.net", list)
    if not all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 65536 for h in hidden):
        raise _fail("policy.net.hidden", "must be a list of layer widths (whole numbers in [1, 65536])")
    norm = _get(policy, "obs_norm", "policy", dict, optional=True)
    if norm is not None:
        if not _get(norm, "clip_obs", "policy.obs_norm", float) > 0:
            raise _fail("policy.obs_norm.clip_obs", "must be > 0")
        if not _get(norm, "epsilon", "policy.obs_norm", float) >= 0:
            raise _fail("policy.obs_norm.epsilon", "must be >= 0")
    prior = _get(policy, "prior", "policy", dict, optional=True)
    if slack or prior is not None:
        table = _get(policy, "table", "policy", dict)
        for k in ("latency_ms", "compute_bound_frac", "energy_mj", "peak_mem_mb", "accuracy", "load_ms"):
            col = _get(table, k, "policy.table", list)
            if len(col) != n or not all(_number(x) for x in col):
                raise _fail(f"policy.table.{k}", f"must be {n} finite numbers (one per variant)")
        for k in ("cores", "threads", "f_max_mhz", "freq_exponent", "dyn_w_max", "mem_total_mb", "overhead_mb",
                  "sigma"):
            _get(table, k, "policy.table", float)
        sched = _get(table, "scheduler", "policy.table", dict)
        for k, v in sched.items():
            if not _number(v):
                raise _fail(f"policy.table.scheduler.{k}", f"must be a finite number, not {v!r}")
        enc = _get(policy, "encoder", "policy", dict)
        for k in ("f_max_mhz", "ref_ms", "cores"):
            if not _get(enc, k, "policy.encoder", float) > 0:
                raise _fail(f"policy.encoder.{k}", "must be > 0")
        if _get(enc, "n_variants", "policy.encoder", int) != n:
            raise _fail("policy.encoder.n_variants", f"must be {n}, the catalog's variants")
    if prior is not None:
        for k in ("sigma", "horizon", "temperature", "period_s"):
            if not _get(prior, k, "policy.prior", float) > 0:
                raise _fail(f"policy.prior.{k}", "must be > 0")

        from adascale_rl.environment.reward import Reward

        reward = _get(prior, "reward", "policy.prior", dict)
        known = set(Reward.__dataclass_fields__) | {"energy_budget_j", "mem_total_mb"}
        for k in sorted(set(reward) - known):
            raise _fail(f"policy.prior.reward.{k}", f"is not a reward field ({', '.join(sorted(known))})")
        for k in sorted(known - {"name"}):
            if not _number(reward.get(k)):
                raise _fail(f"policy.prior.reward.{k}", f"must be a finite number, not {reward.get(k)!r}")
    _ = size
