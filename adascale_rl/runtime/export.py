"""``adascale-rl export``: a trained controller, or a heuristic, as a folder an app runs without training code.

This module runs on the training machine (it loads the Stable-Baselines3 model, so it
imports torch); the folder it writes is read on the device by
:class:`adascale_rl.runtime.Selector`, which imports neither. See
:mod:`adascale_rl.runtime.schema` for the folder's files.

The exported forward holds everything between the raw observation and the chosen
variant: the observation normalisation (VecNormalize's frozen statistics, if the run
normalised observations), the features extractor (the per-variant slack and the planner
prior, computed in float64), the policy network (float32, as trained), the action mask,
the argmax, and the canonical action (asking for the loaded variant is reported as keep).
After writing, the export checks its own work: on observations from test-split rollouts
the numpy forward, ONNX Runtime (when installed) and the Stable-Baselines3 policy must
choose the same actions, and those decisions go into policy.npz as the folder's
self-test, which the selector replays when it loads the folder.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

import adascale_rl
from adascale_rl.runtime import schema
from adascale_rl.runtime.numpy_policy import ACTIVATIONS, NumpyPolicy
from adascale_rl.runtime.schema import LOGIT_RTOL, logit_scale, sha256_file

#: observations of the test split kept in policy.npz as the folder's self-test
CHECK_OBSERVATIONS = 64
#: opset of policy.onnx
OPSET = 17
#: the export's own check against the Stable-Baselines3 policy, relative to the logit scale: loose enough for
#: any float32 rounding of the reference (which grows with extreme prior values), tight against exporter bugs
SANITY_RTOL = 1e-4


class ExportError(ValueError):
    """A controller that cannot be exported, in one sentence naming the file or the part."""


def _sha_or_none(path: Path | None) -> str | None:
    return sha256_file(path) if path is not None and Path(path).is_file() else None


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ the document

def preset_doc(device: Any) -> dict:
    """A device preset as the document :func:`adascale_rl.device.presets.parse_preset` reads (values with origins),
    the optional ``temp_sensor``, ``wake_cv`` and ``corun_stretch`` included where the preset declares them. Its ``service_scale`` (a
    host slower than the catalog) is the simulated world's, not the app's: not written."""
    from adascale_rl.device.model import OPTIONAL_SCHEDULER
    from adascale_rl.device.presets import _NUMBERS

    doc: dict[str, Any] = {"name": device.name, "description": device.description}
    for key in (*_NUMBERS, "dvfs_mhz"):
        kind, _, text = device.sources[key].partition(": ")
        value = getattr(device, key)
        doc[key] = {"value": list(value) if key == "dvfs_mhz" else value, kind: text}
    for key in ("temp_sensor", *OPTIONAL_SCHEDULER):  # optional keys, written where the preset declares them
        if key in device.sources:
            kind, _, text = device.sources[key].partition(": ")
            doc[key] = {"value": getattr(device, key), kind: text}
    return doc


def observation_fields(encoder: Any) -> list[dict]:
    """The observation's fields in order, with unit, bounds, how each is computed and where the selector reads it."""
    from adascale_rl.environment.observation import FEATURES
    from adascale_rl.runtime.live import READ_FROM

    rows = [{"index": i, "name": f.name, "unit": f.unit, "low": f.low, "high": f.high, "doc": f.doc,
             "read_from": READ_FROM[f.name]} for i, f in enumerate(FEATURES)]
    for j, v in enumerate(encoder.catalog.variants):
        rows.append({"index": len(rows), "name": f"loaded={v.id}", "unit": "flag", "low": 0.0, "high": 1.0,
                     "doc": f"1 if variant {v.id} is the one loaded", "read_from": "selector: the variant in use"})
    return rows


def document(env: Any, source: dict, policy: dict, files: dict[str, str]) -> dict:
    """selector.json for an environment (an unwrapped AdaScaleEnv), a source and a policy section."""
    cat = env.catalog
    spec = env.env_spec
    return {
        "format": schema.FORMAT,
        "format_version": schema.FORMAT_VERSION,
        "adascale_rl_version": adascale_rl.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env": {"id": spec.id, "name": spec.name, "reward": env.reward_fn.name,
                "reward_weights": env.reward_fn.to_dict(), "period_s": float(env.period_s),
                "env_kwargs": source.pop("env_kwargs", {})},
        "source": source,
        "observation": {"size": int(env.encoder.size), "fields": observation_fields(env.encoder)},
        "actions": list(env.action_names),
        "variants": [{"id": v.id, "accuracy": v.accuracy, "latency_ms": v.latency_ms, "peak_mem_mb": v.peak_mem_mb,
                      "size_mb": v.size_mb, "energy_mj": v.energy_mj} for v in cat.variants],
        "catalog": cat.to_json(),
        "device": preset_doc(env.app_device),
        "policy": policy,
        "fallback": {"rule": schema.FALLBACK_RULE, "margin": schema.DEFAULT_FALLBACK_MARGIN,
                     "doc": "the most accurate variant whose profiled latency x margin is within min(deadline, "
                            "1 / request rate); the fastest variant when none is, or before the app sets a mode"},
        "files": files,
    }


def _write_json(path: Path, doc: dict) -> None:
    _atomic_bytes(path, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode("utf-8"))


# ------------------------------------------------------------------------------ a trained controller

def _network_section(policy: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """(the ``policy`` section, the arrays of policy.npz) of an SB3 actor-critic policy."""
    import torch as th
    from stable_baselines3.common.torch_layers import FlattenExtractor

    from adascale_rl.policies.prior import PlannerPrior, PriorMaskablePolicy, VariantSlack

    ext = policy.pi_features_extractor
    if isinstance(ext, PlannerPrior):
        features = "planner-prior"
    elif isinstance(ext, VariantSlack):
        features = "slack"
    elif isinstance(ext, FlattenExtractor):
        features = "observation"
    else:
        raise ExportError(f"features extractor {type(ext).__name__} cannot be exported (supported: PlannerPrior, "
                          f"VariantSlack, FlattenExtractor)")
    prior = isinstance(ext, PlannerPrior) and isinstance(policy, PriorMaskablePolicy)
    layers = list(policy.mlp_extractor.policy_net)
    linears = [m for m in layers if isinstance(m, th.nn.Linear)]
    acts = {type(m).__name__.lower() for m in layers if not isinstance(m, th.nn.Linear)}
    if len(acts) > 1 or (acts and next(iter(acts)) not in ACTIVATIONS) or len(layers) != 2 * len(linears):
        raise ExportError(f"the policy network {policy.mlp_extractor.policy_net} is not a stack of Linear layers "
                          f"with one of the activations {', '.join(ACTIVATIONS)}")
    arrays: dict[str, np.ndarray] = {}
    for i, lin in enumerate(linears):
        arrays[f"pi_w{i}"] = lin.weight.detach().cpu().numpy().T.astype(np.float32)
        arrays[f"pi_b{i}"] = lin.bias.detach().cpu().numpy().astype(np.float32)
    arrays["action_w"] = policy.action_net.weight.detach().cpu().numpy().T.astype(np.float32)
    arrays["action_b"] = policy.action_net.bias.detach().cpu().numpy().astype(np.float32)
    section: dict[str, Any] = {
        "kind": "network", "algo": type(policy).__name__, "features": features,
        "slack": features in ("planner-prior", "slack"),
        "net": {"activation": next(iter(acts)) if acts else "tanh", "hidden": [lin.out_features for lin in linears]},
        "obs_norm": None, "prior": None,
    }
    if section["slack"]:
        section["table"] = ext.table.to_dict()
        section["encoder"] = dict(ext.encoder)
    if prior:
        section["prior"] = {"sigma": ext.sigma, "horizon": ext.horizon, "temperature": ext.temperature,
                            "period_s": ext.dt, "reward": {**ext.reward.weights.to_dict(),
                                                           "energy_budget_j": ext.reward.energy_budget_j,
                                                           "mem_total_mb": ext.reward.mem_total_mb}}
    return section, arrays


def _obs_norm(obs_norm: Any) -> tuple[dict | None, dict[str, np.ndarray]]:
    """VecNormalize's frozen observation statistics (read from its __dict__: an unpickled VecNormalize has no
    venv, and its attribute lookup would recurse)."""
    if obs_norm is None:
        return None, {}
    d = vars(obs_norm)
    if not d.get("norm_obs"):
        return None, {}
    rms = d.get("obs_rms")
    if rms is None or isinstance(rms, dict):
        raise ExportError("the run normalised dictionary observations, which cannot be exported")
    return ({"clip_obs": float(d["clip_obs"]), "epsilon": float(d["epsilon"])},
            {"obs_mean": np.asarray(rms.mean, dtype=np.float64), "obs_var": np.asarray(rms.var, dtype=np.float64)})


class _OnnxForward:
    """The exported forward as a torch module, for ``torch.onnx.export`` (built lazily: torch is imported here)."""

    @staticmethod
    def build(policy: Any, section: dict, arrays: dict, n_context: int, n_variants: int):
        import torch as th

        class Forward(th.nn.Module):
            def __init__(self):
                super().__init__()
                ext = copy.deepcopy(policy.pi_features_extractor)
                table = getattr(ext, "table", None)
                if table is not None:  # the prior in float64, from the table's float64 numbers
                    for k, v in table.arrays().items():
                        ext._buffers[k] = th.tensor(v, dtype=th.float64)
                self.ext = ext
                self.mlp = copy.deepcopy(policy.mlp_extractor.policy_net)
                self.head = copy.deepcopy(policy.action_net)
                self.prior = section["prior"] is not None
                self.norm = section["obs_norm"] is not None
                if self.norm:
                    self.register_buffer("mean", th.tensor(arrays["obs_mean"], dtype=th.float64))
                    self.register_buffer("std", th.tensor(np.sqrt(arrays["obs_var"] + section["obs_norm"]["epsilon"]),
                                                          dtype=th.float64))
                    self.clip = float(section["obs_norm"]["clip_obs"])

            def forward(self, observation, action_mask):
                x = observation.to(th.float64)
                if self.norm:
                    x = th.clamp((x - self.mean) / self.std, -self.clip, self.clip).to(th.float32).to(th.float64)
                feats = self.ext(x)
                logits = self.head(self.mlp(feats.to(th.float32))).to(th.float64)
                if self.prior:
                    logits = logits + self.ext.last_prior
                masked = th.where(action_mask, logits, th.full_like(logits, -math.inf))
                action = th.argmax(masked, dim=1)
                loaded = th.argmax(observation[:, n_context:n_context + n_variants], dim=1)
                action = th.where(action == loaded + 1, th.zeros_like(action), action)
                return action, logits

        return Forward().eval()


def _onnx_bytes(policy: Any, section: dict, arrays: dict, obs_size: int, n_actions: int) -> bytes:
    import warnings

    import torch as th

    from adascale_rl.environment.observation import N_CONTEXT

    module = _OnnxForward.build(policy, section, arrays, N_CONTEXT, n_actions - 1)
    example = (th.zeros(2, obs_size, dtype=th.float32), th.ones(2, n_actions, dtype=th.bool))
    example[0][:, N_CONTEXT] = 1.0
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        th.onnx.export(module, example, buf, dynamo=False, opset_version=OPSET,
                       input_names=["observation", "action_mask"], output_names=["action", "logits"],
                       dynamic_axes={"observation": {0: "batch"}, "action_mask": {0: "batch"},
                                     "action": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue()


def sb3_logits(policy: Any, obs: np.ndarray) -> np.ndarray:
    """The Stable-Baselines3 policy's raw action logits (float32, as a float64 array) for raw observations.

    :meth:`PPOPolicy.logits <adascale_rl.policies.ppo.PPOPolicy.logits>` returns the distribution's
    log-probabilities (the logits minus their log-sum-exp); this runs the same modules in the same order
    as the policy (normalisation, features extractor, actor MLP, action head, plus the prior for
    :class:`~adascale_rl.policies.prior.PriorMaskablePolicy`) and stops before the distribution's
    normalisation, and checks that normalising them gives the distribution's logits.
    """
    import torch as th

    from adascale_rl.policies.prior import PriorMaskablePolicy

    sb3 = policy.model.policy
    o = np.asarray(obs, dtype=np.float32)
    if policy.obs_norm is not None:
        o = policy.obs_norm.normalize_obs(o).astype(np.float32)
    with th.no_grad():
        x = th.as_tensor(o)
        feats = sb3.extract_features(x, sb3.pi_features_extractor)
        logits = sb3.action_net(sb3.mlp_extractor.forward_actor(feats))
        if isinstance(sb3, PriorMaskablePolicy):
            logits = logits + sb3.pi_features_extractor.last_prior
        dist = sb3.get_distribution(x).distribution.logits
        normalised = logits - logits.logsumexp(dim=-1, keepdim=True)  # what torch's Categorical stores
        scale = th.clamp(logits.abs().amax(dim=1, keepdim=True), min=1.0)
        if not bool(th.all((normalised - dist).abs() <= 1e-6 * scale)):
            raise ExportError("the policy's raw logits could not be reproduced from its modules (an unsupported "
                              "policy class?)")
    return logits.numpy().astype(np.float64)


def rollout_observations(env: Any, act, n: int, seed: int = 0, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (observation, action mask) pairs from test-split episodes, walking the split's windows in order
    (and again with other seeds when the split is shorter than ``n``) with ``act(obs, mask)`` choosing (a
    controller's own trajectory); with ``epsilon`` > 0 a random valid action replaces its choice in that
    share of the steps, so that the observations cover switches, loads and every loaded variant."""
    rng = np.random.default_rng(seed)
    obs_rows, masks = [], []
    episodes = env.evaluation_episodes()
    k = 0
    while len(obs_rows) < n:
        trace, start = episodes[k % len(episodes)]
        obs, info = env.reset(seed=seed + k, options={"trace": trace, "start": start})
        k += 1
        done = False
        while not done and len(obs_rows) < n:
            mask = np.asarray(info["action_mask"], dtype=bool)
            obs_rows.append(np.asarray(obs, dtype=np.float32))
            masks.append(mask)
            explore = epsilon > 0 and rng.random() < epsilon
            a = int(rng.choice(np.flatnonzero(mask))) if explore else act(obs, mask)
            obs, _, _, done, info = env.step(a)
    return np.array(obs_rows), np.array(masks)


def canonical(actions: np.ndarray, obs: np.ndarray, n_context: int, n_variants: int) -> np.ndarray:
    """Actions with "switch to the loaded variant" written as keep (0): the same decision, one name."""
    loaded = np.argmax(np.asarray(obs)[:, n_context:n_context + n_variants], axis=1)
    a = np.asarray(actions)
    return np.where(a == loaded + 1, 0, a)


def export_controller(agent: str | os.PathLike, out: str | os.PathLike, *, env_id: str | None = None,
                      check_observations: int = CHECK_OBSERVATIONS) -> Path:
    """Export a run folder or a shipped ``agents/<env>/ppo`` folder into ``out``; returns ``out``."""
    from adascale_rl import paths
    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.environment.observation import N_CONTEXT
    from adascale_rl.environment.spec import find_spec
    from adascale_rl.policies import ppo, ppo_run

    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError:
        raise ExportError("export needs the onnx package: pip install 'adascale-rl[deploy]'") from None
    folder = paths.resolve(agent, "agents")
    model_file, stats_file = (folder, ppo._stats_for(folder)) if folder.is_file() else ppo._model_files(folder)
    policy = ppo.load_policy(folder)
    config = policy.config or {}
    if env_id is not None:
        spec = find_spec(env_id)
    elif config:
        spec = ppo._spec_of(config)
    else:
        raise ExportError(f"{folder} has no {ppo_run.CONFIG} saying which environment it was trained on; give --env")
    env_kwargs = {k: v for k, v in (config.get("env_kwargs") or {}).items() if k != "dataset"}
    env = AdaScaleEnv(spec, split="test", **env_kwargs)
    policy.reset(env)
    sb3 = policy.model.policy
    section, arrays = _network_section(sb3)
    section["obs_norm"], norm_arrays = _obs_norm(policy.obs_norm)
    arrays.update(norm_arrays)
    if section["slack"]:
        mine, theirs = env.app_physics.table.to_dict(), section["table"]
        if not _same_numbers(mine, theirs) or section["encoder"] != env.encoder.constants():
            try:
                trained_on = ppo._spec_of(config).id if config and env_id is not None else None
            except (KeyError, ValueError, OSError):  # its environment is gone: the message below says enough
                trained_on = None
            if trained_on is not None and trained_on != spec.id:  # the --env given is the mistake, not the model
                raise ExportError(f"{folder} was trained on {trained_on}, not on --env {env_id} ({spec.id}): "
                                  f"leave --env out, its {ppo_run.CONFIG} names the environment")
            raise ExportError(f"{model_file} was trained with another catalog or device than {spec.id} has now "
                              f"({env.catalog.path}, {env.device.path}); retrain it, or export it with the files "
                              f"it was trained on")
    n_actions = int(env.action_space.n)
    size = int(env.encoder.size)

    numpy_policy = NumpyPolicy(section, arrays, size, n_actions)
    obs, masks = rollout_observations(env, lambda o, m: policy.act(o, {"action_mask": m}), check_observations)
    actions, logits = numpy_policy.batch(obs, masks)
    ref_logits = sb3_logits(policy, obs)
    ref_actions = canonical(np.array([policy.act(o, {"action_mask": m}) for o, m in zip(obs, masks)]), obs,
                            N_CONTEXT, n_actions - 1)
    loaded = np.argmax(obs[:, N_CONTEXT:], axis=1)
    # a sanity check against exporter bugs (those are off by O(1)); the parity tests hold the exact bounds
    if not np.all(schema.decisions_agree(actions, ref_actions, ref_logits, loaded, SANITY_RTOL)) or not np.all(
            np.abs(logits - ref_logits) <= SANITY_RTOL * logit_scale(ref_logits)[:, None]):
        raise ExportError(f"the numpy forward of {model_file} disagrees with the Stable-Baselines3 policy on its "
                          f"own test rollouts (a bug in the exporter; please report it)")
    onnx_bytes = _onnx_bytes(sb3, section, arrays, size, n_actions)
    _check_onnx(onnx_bytes, obs, masks, actions, logits, model_file)

    arrays.update({"check_obs": obs.astype(np.float32), "check_mask": masks.astype(bool),
                   "check_action": actions.astype(np.int64), "check_logits": logits.astype(np.float64)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_bytes(out / schema.POLICY_NPZ, buf.getvalue())
    _atomic_bytes(out / schema.POLICY_ONNX, onnx_bytes)
    files = {schema.POLICY_NPZ: sha256_file(out / schema.POLICY_NPZ),
             schema.POLICY_ONNX: sha256_file(out / schema.POLICY_ONNX)}
    source = {"kind": "ppo", "path": ppo.portable_path(folder), "model_file": model_file.name,
              "model_sha256": sha256_file(model_file), "vecnormalize_sha256": _sha_or_none(stats_file),
              "trained_env": config.get("env"), "catalog_file": ppo.portable_path(env.catalog.path),
              "catalog_sha256": _sha_or_none(env.catalog.path), "device_file": ppo.portable_path(env.device.path),
              "device_sha256": _sha_or_none(env.device.path), "env_kwargs": env_kwargs}
    doc = document(env, source, section, files)
    _write_json(out / schema.SELECTOR_JSON, schema.validate(doc))
    return out


def _same_numbers(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_numbers(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _check_onnx(onnx_bytes: bytes, obs, masks, actions, logits, model_file) -> None:
    """ONNX Runtime on the check observations must give the numpy forward's actions and logits (skipped, with
    the reason in the export's output, when onnxruntime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("note: onnxruntime is not installed; policy.onnx was not run against the numpy forward")
        return
    from adascale_rl.environment.observation import N_CONTEXT

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    a, lg = sess.run(None, {"observation": obs.astype(np.float32), "action_mask": masks.astype(bool)})
    loaded = np.argmax(obs[:, N_CONTEXT:], axis=1)
    if not np.all(schema.decisions_agree(a, actions, logits, loaded)) or not np.all(
            np.abs(lg - logits) <= LOGIT_RTOL * logit_scale(logits)[:, None]):
        raise ExportError(f"policy.onnx of {model_file} disagrees with the numpy forward (a bug in the exporter; "
                          f"please report it)")


# ------------------------------------------------------------------------------ a heuristic

def export_heuristic(name: str, env_id: str, out: str | os.PathLike, *, tune: Callable,
                     env_kwargs: Mapping[str, Any] | None = None, quick: bool = False) -> Path:
    """Export a heuristic by name, its margins tuned on ``env_id``'s train split by ``tune(name, train_env,
    quick)`` -> (policy, params): :func:`adascale_rl.evaluation.bench.tuned_policy`, so that they are tuned as
    ``bench`` tunes them (the evaluation layer sits above this one; the command hands it in)."""
    from adascale_rl.environment.env import AdaScaleEnv
    from adascale_rl.environment.spec import find_spec
    from adascale_rl.policies import ppo

    if name not in schema.HEURISTICS:
        raise ExportError(f"{name!r} is not a deployable heuristic; choose one of {', '.join(schema.HEURISTICS)}")
    spec = find_spec(env_id)
    kw = dict(env_kwargs or {})
    train_env = AdaScaleEnv(spec, split="train", **kw)
    _, params = tune(name, train_env, quick)
    env = AdaScaleEnv(spec, split="test", **kw)
    params = {k: (v if isinstance(v, str) else float(v)) for k, v in params.items()}
    section = {"kind": "heuristic", "name": name, "params": params,
               "tuned_on": f"{spec.id} train split ({'quick' if quick else 'as bench tunes'})"}
    source = {"kind": "heuristic", "path": None, "model_sha256": None, "vecnormalize_sha256": None,
              "catalog_file": ppo.portable_path(env.catalog.path), "catalog_sha256": _sha_or_none(env.catalog.path),
              "device_file": ppo.portable_path(env.device.path), "device_sha256": _sha_or_none(env.device.path),
              "env_kwargs": kw}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (schema.POLICY_NPZ, schema.POLICY_ONNX):  # a previous network export in the same folder
        (out / stale).unlink(missing_ok=True)
    _write_json(out / schema.SELECTOR_JSON, schema.validate(document(env, source, section, {})))
    return out


def export_command(args, tune: Callable | None = None) -> int:
    """``adascale-rl export``: arguments from :mod:`adascale_rl.cli`; ``tune`` as :func:`export_heuristic` takes it
    (needed with ``--policy``)."""
    from adascale_rl.policies.ppo import check_env_kwargs, parse_env_kwargs

    if (args.agent is None) == (args.policy is None):
        raise ExportError("give --agent DIR (a trained controller) or --policy NAME with --env ID (a heuristic)")
    if args.policy is not None:
        if args.env is None:
            raise ExportError(f"--policy {args.policy} needs --env ID (the environment to tune it on)")
        out = export_heuristic(args.policy, args.env, args.out, tune=tune,
                               env_kwargs=check_env_kwargs(parse_env_kwargs(args.env_kwargs)), quick=args.quick)
    else:
        out = export_controller(args.agent, args.out, env_id=args.env)
    files = sorted(p.name for p in Path(out).iterdir() if p.name in (schema.SELECTOR_JSON, schema.POLICY_NPZ,
                                                                    schema.POLICY_ONNX))
    print(f"exported to {out}: {', '.join(files)}")
    return 0
