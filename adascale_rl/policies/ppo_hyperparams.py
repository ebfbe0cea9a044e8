"""The PPO training recipe: ``agents/hyperparams/ppo.yml``, keyed by environment.

The file uses rl-zoo3's format, so the same recipe drives ``adascale-rl train``
and ``python -m rl_zoo3.train --conf-file agents/hyperparams/ppo.yml``::

    default:                       # every shipped environment uses this entry
      policy: MlpPolicy
      n_envs: 8
      vectorized: true             # the n_envs environments as one native vector environment (adascale-rl only)
      n_timesteps: !!float 3e5
      normalize: {norm_obs: true, norm_reward: true}
      learning_rate: lin_3e-4      # a number, or lin_<start> (linear decay to 0)
      policy_kwargs: {net_arch: {pi: [64, 64], vf: [64, 64]}}
      callback:
        - adascale_rl.policies.callbacks.KeepBias: {keep_prob: 0.9}
      ...                          # any other MaskablePPO argument

An environment's entry is looked up by its id (``AdaScale/Rpi4-Vision-v4``, as
rl-zoo3 does), then by its name (``Rpi4-Vision``), then ``default``.
``normalize`` and ``policy_kwargs`` may also be rl-zoo3's Python strings
(``"dict(net_arch=[64, 64], activation_fn=nn.ReLU)"``); they are read with a
small evaluator that knows ``dict``, literals and ``nn.<Layer>``, not ``eval``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from adascale_rl import paths

#: keys the trainer consumes itself; everything else goes to MaskablePPO(...)
OWN_KEYS = ("policy", "n_envs", "n_timesteps", "normalize", "env_kwargs", "callback", "vectorized",
            "val_episodes")
#: rl-zoo3 keys this trainer does not implement: named in the error rather than ignored
UNSUPPORTED = ("env_wrapper", "vec_env_wrapper", "frame_stack", "monitor_kwargs", "noise_type", "noise_std")
#: MaskablePPO arguments the trainer sets itself
RESERVED = ("env", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model")


class HyperparamsError(ValueError):
    """A hyperparameter file or entry that cannot be used; names the file and key."""


def default_file() -> Path:
    return paths.agents_dir() / "hyperparams" / "ppo.yml"


@dataclass
class Recipe:
    """One parsed entry: what the trainer needs, in Python objects."""

    file: str
    key: str
    raw: dict[str, Any]                       # the entry as written (goes into config.yml)
    policy: Any = "MlpPolicy"                 # a name SB3 knows, or a policy class
    n_envs: int = 1
    vectorized: bool = False                  # collect from (and validate in) the native vector environment
    n_timesteps: int = 100_000
    normalize: dict[str, Any] | None = None   # VecNormalize kwargs, None = no normalisation
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    callbacks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # validation's episodes: its windows, each from as many start variants as fit in this many episodes
    # (the usual one, the most accurate that fits, and the rest spread over the catalog's latency order;
    # adascale_rl.policies.ppo_run.start_variants_for); None = each window once, from the usual start
    val_episodes: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def rollout_steps(self) -> int:
        """Environment steps per PPO update (n_envs x n_steps)."""
        return self.n_envs * int(self.model_kwargs.get("n_steps", 2048))


def read_file(file: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    from adascale_rl._files import read_data

    path = Path(file) if file is not None else default_file()
    doc = read_data(path, HyperparamsError)
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise HyperparamsError(f"hyperparameter file {path} must map environment ids (or 'default') to mappings")
    return path, doc


def lookup(doc: dict[str, Any], env_id: str, name: str, path: Path) -> tuple[str, dict[str, Any]]:
    for key in (env_id, name, "default"):
        if key in doc:
            return key, dict(doc[key])
    raise HyperparamsError(f"hyperparameter file {path} has no entry for {env_id}, {name} or 'default'")


def load_recipe(env_id: str, name: str, file: str | os.PathLike | None = None) -> Recipe:
    path, doc = read_file(file)
    key, entry = lookup(doc, env_id, name, path)
    return parse(entry, str(path), key)


def parse(entry: dict[str, Any], file: str = "<hyperparams>", key: str = "default") -> Recipe:
    """Check an entry and turn it into a :class:`Recipe`; errors name the file, the entry and the key."""
    from sb3_contrib import MaskablePPO

    where = f"{file} [{key}]"
    raw = dict(entry)
    hp = dict(entry)
    bad = [k for k in hp if k in UNSUPPORTED]
    if bad:
        raise HyperparamsError(f"{where}: {', '.join(bad)} is an rl-zoo3 option adascale-rl train does not support")
    reserved = [k for k in hp if k in RESERVED]
    if reserved:
        raise HyperparamsError(f"{where}: {', '.join(reserved)} is set by the trainer and cannot be a hyperparameter")
    allowed = set(inspect.signature(MaskablePPO.__init__).parameters) - {"self", *RESERVED}
    unknown = [k for k in hp if k not in allowed and k not in OWN_KEYS]
    if unknown:
        raise HyperparamsError(f"{where}: unknown hyperparameter(s) {', '.join(sorted(unknown))}; "
                               f"MaskablePPO takes {', '.join(sorted(allowed))}")
    r = Recipe(file=file, key=key, raw=raw)
    r.policy = hp.pop("policy", "MlpPolicy")
    if isinstance(r.policy, str) and "." in r.policy:  # a policy class by its import path
        r.policy = import_object(r.policy, where)
    r.n_envs = _positive_int(hp.pop("n_envs", 1), where, "n_envs")
    r.vectorized = hp.pop("vectorized", False)
    if not isinstance(r.vectorized, bool):
        raise HyperparamsError(f"{where}: vectorized must be true or false, not {r.vectorized!r}")
    r.n_timesteps = _positive_int(hp.pop("n_timesteps", 100_000), where, "n_timesteps")
    r.normalize = _normalize(hp.pop("normalize", False), where)
    env_kwargs = hp.pop("env_kwargs", {}) or {}
    if not isinstance(env_kwargs, dict):
        raise HyperparamsError(f"{where}: env_kwargs must be a mapping")
    r.env_kwargs = dict(env_kwargs)
    r.callbacks = _callbacks(hp.pop("callback", None), where)
    if "val_episodes" in hp:
        r.val_episodes = _positive_int(hp.pop("val_episodes"), where, "val_episodes")
    for k in ("learning_rate", "clip_range", "clip_range_vf"):
        if k in hp:
            hp[k] = _schedule(hp[k], where, k)
    if "policy_kwargs" in hp:
        pk = hp["policy_kwargs"]
        pk = safe_eval(pk, where, "policy_kwargs") if isinstance(pk, str) else pk
        if not isinstance(pk, dict):
            raise HyperparamsError(f"{where}: policy_kwargs must be a mapping")
        pk = dict(pk)
        if isinstance(pk.get("features_extractor_class"), str):
            pk["features_extractor_class"] = import_object(pk["features_extractor_class"], where)
        hp["policy_kwargs"] = pk
    for k in ("n_steps", "batch_size", "n_epochs"):
        if k in hp:
            hp[k] = _positive_int(hp[k], where, k)
    r.model_kwargs = hp
    if r.normalize is not None and "gamma" in hp:
        r.normalize.setdefault("gamma", float(hp["gamma"]))  # as rl-zoo3: discount the reward scale with gamma
    return r


def _positive_int(v: Any, where: str, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 1 or int(v) != v:
        raise HyperparamsError(f"{where}: {key} must be a positive integer, not {v!r}")
    return int(v)


def _normalize(v: Any, where: str) -> dict[str, Any] | None:
    if isinstance(v, str):
        v = safe_eval(v, where, "normalize")
    if v is True:
        return {}
    if v is False or v is None:
        return None
    if isinstance(v, dict):
        return dict(v)
    raise HyperparamsError(f"{where}: normalize must be true, false or a mapping of VecNormalize arguments")


class LinearDecay:
    """``lin_<start>``: from ``start`` at the beginning down to 0 at the end (picklable)."""

    def __init__(self, start: float):
        self.start = float(start)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


def _schedule(v: Any, where: str, key: str):
    if isinstance(v, bool):
        raise HyperparamsError(f"{where}: {key} must be a number or lin_<number>, not {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.startswith("lin_"):
        try:
            return LinearDecay(float(v[4:]))
        except ValueError:
            pass
    raise HyperparamsError(f"{where}: {key} must be a number or lin_<number>, not {v!r}")


def _callbacks(v: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """rl-zoo3's ``callback:`` syntax: a name, or a list of names or ``{name: kwargs}``."""
    if v is None:
        return []
    items = v if isinstance(v, list) else [v]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            name, kwargs = next(iter(item.items()))
            if not isinstance(kwargs, dict):
                raise HyperparamsError(f"{where}: callback {name} needs a mapping of arguments")
            out.append((str(name), dict(kwargs)))
        else:
            raise HyperparamsError(f"{where}: callback entries are 'module.Class' or {{module.Class: {{args}}}}")
    return out


def import_object(qualified: str, where: str = "") -> Any:
    module, _, attr = qualified.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise HyperparamsError(f"{where}: cannot import {qualified!r}") from None


def build_callbacks(recipe: Recipe) -> list:
    where = f"{recipe.file} [{recipe.key}]"
    out = []
    for name, kwargs in recipe.callbacks:
        cls = import_object(name, where)
        try:
            out.append(cls(**kwargs))
        except TypeError as exc:
            raise HyperparamsError(f"{where}: callback {name}: {exc}") from None
    return out


# ---------------------------------------------------------------- rl-zoo3 strings

def safe_eval(text: str, where: str, key: str) -> Any:
    """Evaluate rl-zoo3's ``"dict(a=1, act=nn.ReLU)"`` strings without ``eval``."""
    try:
        node = ast.parse(text, mode="eval").body
        return _eval_node(node)
    except (SyntaxError, ValueError) as exc:
        raise HyperparamsError(f"{where}: {key} {text!r} is not understood ({exc})") from None


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_eval_node(k): _eval_node(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval_node(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _eval_node(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Attribute):
        dotted = ast.unparse(node)
        for prefix in ("nn.", "th.nn.", "torch.nn."):
            if dotted.startswith(prefix) and dotted.count(".") == prefix.count("."):
                import torch.nn

                layer = getattr(torch.nn, dotted[len(prefix):], None)
                if layer is not None:
                    return layer
        raise ValueError(f"unknown name {dotted}")
    if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.id]
    raise ValueError(f"only dict(...), literals and nn.<Layer> are allowed, not {ast.unparse(node)}")
