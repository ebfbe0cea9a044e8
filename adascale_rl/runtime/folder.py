"""Reading an exported folder on the device, trusting nothing in it.

``selector.json`` is parsed with ``json`` and validated field by field
(:mod:`adascale_rl.runtime.schema`); its observation layout must be this version's; every
file it lists must match its sha256; every ``.npy`` member of ``policy.npz`` has its header
(name, dtype, shape) checked before ``np.load(..., allow_pickle=False)`` reads it, so no
pickled object is ever loaded and nothing larger than declared is allocated; the policy
must reproduce the check decisions the export stored. Any problem is a
:class:`FolderError` naming the file and the cause, in one sentence.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from adascale_rl.environment.observation import FEATURES, N_CONTEXT
from adascale_rl.runtime import schema

#: a policy.npz larger than this is refused before it is read (the shipped ones are ~60 kB)
MAX_NPZ_BYTES = 64 * 2**20
BACKENDS = ("numpy", "onnxruntime")

#: ``decide(obs, mask) -> (action, logits or None)``
Decide = Callable[[np.ndarray, np.ndarray], tuple]


class FolderError(ValueError):
    """An exported folder the selector will not use; the message names the file and the cause."""


def read_document(folder: Path) -> Any:
    """selector.json, parsed (not yet validated)."""
    path = folder / schema.SELECTOR_JSON
    if not path.is_file():
        raise FolderError(f"{path} is missing (not an exported folder)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(f"{path} cannot be read as JSON ({exc})") from None


def catalog_of(raw: Any):
    """The catalog of a parsed selector.json, or None when it has none that validates (best effort: the
    fallback rule needs only the catalog, even from a document that is otherwise refused)."""
    from adascale_rl.device.catalog import validate as validate_catalog

    try:
        return validate_catalog(raw["catalog"], source="selector.json catalog")
    except Exception:
        return None


def check_layout(doc: Mapping, catalog: Any) -> None:
    """The observation's fields, the variants and the actions are the ones this version builds."""
    n = len(catalog)
    names = [f["name"] for f in doc["observation"]["fields"]]
    want = [f.name for f in FEATURES] + [f"loaded={v.id}" for v in catalog.variants]
    if names != want:
        i = next(i for i in range(max(len(names), len(want)))
                 if i >= len(names) or i >= len(want) or names[i] != want[i])
        got = names[i] if i < len(names) else None
        exp = want[i] if i < len(want) else None
        raise FolderError(f"selector.json observation.fields[{i}] is {got!r} where this adascale-rl reads {exp!r}: "
                          f"the observation layout of another version (export again)")
    if [v["id"] for v in doc["variants"]] != catalog.ids or len(doc["actions"]) != n + 1:
        raise FolderError("selector.json variants or actions do not match its catalog")


def verify(folder: Path, doc: Mapping, name: str) -> Path:
    """``folder/name``, after checking it against its sha256 in selector.json."""
    path = folder / name
    if not path.is_file():
        raise FolderError(f"{path} is missing")
    want = doc["files"].get(name)
    if want is None:
        raise FolderError(f"selector.json lists no sha256 for {name}")
    got = schema.sha256_file(path)
    if got != want:
        raise FolderError(f"{path} does not match its sha256 in selector.json (tampered with or damaged: "
                          f"{got[:12]}... instead of {want[:12]}...)")
    return path


def npy_header(fh, path: Path, name: str) -> tuple:
    """(shape, fortran order, dtype) from the header of one .npy member, without reading its data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fh)
        if version == (2, 0):
            return fmt.read_array_header_2_0(fh)
    except ValueError as exc:
        raise FolderError(f"{path}: array {name!r} has no valid .npy header ({exc})") from None
    raise FolderError(f"{path}: array {name!r} is in .npy format {version}, not 1.0 or 2.0")


def read_npz(path: Path, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The arrays of policy.npz, after checking every member's header against ``expected`` (name -> shape)."""
    if path.stat().st_size > MAX_NPZ_BYTES:
        raise FolderError(f"{path} is larger than {MAX_NPZ_BYTES >> 20} MB")
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if name not in expected:
                    raise FolderError(f"{path} holds an unexpected array {info.filename!r}")
                with zf.open(info) as fh:
                    shape, _, dtype = npy_header(fh, path, name)
                if dtype.hasobject:
                    raise FolderError(f"{path} holds pickled Python objects in {name!r} (refused: loading them "
                                      f"could run code)")
                if dtype.kind not in "fbi":
                    raise FolderError(f"{path}: array {name!r} has dtype {dtype}, not a number")
                if tuple(shape) != tuple(expected[name]):
                    raise FolderError(f"{path}: array {name!r} has shape {tuple(shape)}, expected "
                                      f"{tuple(expected[name])}")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FolderError(f"{path} is not a readable .npz ({exc})") from None
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise FolderError(f"{path} lacks the array(s) {', '.join(missing)}")
    for k, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise FolderError(f"{path}: array {k!r} holds NaN or infinity")
    return arrays


def _checks(npz: Path) -> int:
    """How many check decisions policy.npz holds (from the header of check_obs)."""
    try:
        with zipfile.ZipFile(npz) as zf:
            if "check_obs.npy" not in zf.namelist():
                raise FolderError(f"{npz} has no check decisions (check_obs)")
            with zf.open("check_obs.npy") as fh:
                shape = npy_header(fh, npz, "check_obs")[0]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FolderError(f"{npz} is not a readable .npz ({exc})") from None
    if len(shape) != 2 or not shape[0]:
        raise FolderError(f"{npz}: check_obs has shape {shape}, not (checks, observation size)")
    return int(shape[0])


def network(folder: Path, doc: Mapping, size: int, n_actions: int, backend: str,
            warn: Callable[..., None]) -> tuple[Decide, Any, str]:
    """(decide, the numpy policy, the backend in use) for a ``network`` policy, after every check."""
    from adascale_rl.runtime.numpy_policy import NumpyPolicy, array_shapes

    if backend not in BACKENDS:
        raise FolderError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    for name in doc["files"]:  # a folder is refused as a whole if any file it lists was changed
        if name != schema.POLICY_NPZ and (folder / name).exists():
            verify(folder, doc, name)
    npz = verify(folder, doc, schema.POLICY_NPZ)
    k = _checks(npz)
    expected = {**array_shapes(doc["policy"], size, n_actions), "check_obs": (k, size),
                "check_mask": (k, n_actions), "check_action": (k,), "check_logits": (k, n_actions)}
    arrays = read_npz(npz, expected)
    policy = NumpyPolicy(doc["policy"], arrays, size, n_actions)
    policy.compile(arrays["check_obs"][0])
    decide, used = policy, "numpy"
    if backend == "onnxruntime":
        ort = _onnx_runtime(folder, doc, size, n_actions, warn)
        if ort is not None:
            decide, used = ort, "onnxruntime"
    self_test(decide, arrays, doc)
    return decide, policy, used


def _onnx_runtime(folder: Path, doc: Mapping, size: int, n_actions: int, warn) -> Decide | None:
    try:
        import onnxruntime as ort
    except ImportError:
        warn("ort-missing", "onnxruntime is not installed; using the numpy forward", fallback=False)
        return None
    path = verify(folder, doc, schema.POLICY_ONNX)
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        warn("ort-load", f"ONNX Runtime cannot load {path} ({type(exc).__name__}); using the numpy forward",
             fallback=False)
        return None
    obs_buf = np.zeros((1, size), dtype=np.float32)
    mask_buf = np.ones((1, n_actions), dtype=bool)

    def run(obs, mask):
        obs_buf[0] = obs
        mask_buf[0] = True if mask is None else mask
        action, logits = sess.run(None, {"observation": obs_buf, "action_mask": mask_buf})
        return int(action[0]), logits[0]

    return run


def self_test(decide: Decide, arrays: Mapping[str, np.ndarray], doc: Mapping) -> None:
    """The folder's own check decisions, replayed: another version's math, or a damaged file, shows here."""
    import adascale_rl

    logits_ref = arrays["check_logits"]
    scale = schema.logit_scale(logits_ref)
    loaded = np.argmax(arrays["check_obs"][:, N_CONTEXT:], axis=1)
    for i, (o, m) in enumerate(zip(arrays["check_obs"], arrays["check_mask"])):
        action, logits = decide(o, m)
        agree = schema.decisions_agree([action], arrays["check_action"][i:i + 1], logits_ref[i:i + 1],
                                       loaded[i:i + 1])[0]
        if not agree or not np.all(np.abs(np.asarray(logits, dtype=np.float64) - logits_ref[i])
                                   <= schema.LOGIT_RTOL * scale[i]):
            raise FolderError(f"the policy does not reproduce its own check decision {i} on this machine "
                              f"(exported by adascale-rl {doc['adascale_rl_version']}, this is "
                              f"{adascale_rl.__version__}; export again)")


def reward_of(doc: Mapping, device: Any) -> tuple[Any, Any]:
    """(the reward function, its scaled form) of a selector.json, for its device: what the selector and a replay
    of its decisions reward."""
    from adascale_rl.environment.reward import make_reward

    fn = make_reward({"preset": "balanced", **{k: v for k, v in doc["env"]["reward_weights"].items() if k != "name"}})
    return fn, fn.scaled(device.energy_budget_j(float(doc["env"]["period_s"])), device.mem_total_mb)


def heuristic_view(doc: Mapping, catalog: Any, device: Any, encoder: Any) -> Any:
    """What a heuristic keeps of its environment, for the controller of ``doc`` (a selector.json): its catalog and
    device, the observation ``encoder``, and its reward and period."""
    from types import SimpleNamespace

    reward_fn, reward = reward_of(doc, device)
    return SimpleNamespace(catalog=catalog, device=device, encoder=encoder, reward_fn=reward_fn, reward=reward,
                           period_s=float(doc["env"]["period_s"]))


def heuristic(section: Mapping, view: Any, info: Callable[[], dict]) -> Decide:
    """``decide`` for a ``heuristic`` policy: the named heuristic, its parameters set, reset on ``view`` (what a
    heuristic keeps of an environment: catalog, device, encoder, reward, period); ``info()`` gives the last
    period's feedback as the environment's ``info`` does."""
    from adascale_rl.policies.heuristics import HEURISTICS

    h = HEURISTICS[section["name"]]()
    for k, v in section["params"].items():
        if not hasattr(h, k):
            raise FolderError(f"heuristic {section['name']!r} has no parameter {k!r}")
        setattr(h, k, v)
    h.reset(view)
    return lambda obs, mask: (int(h.act(obs, {**info(), "action_mask": mask})), None)
