"""Tiny controllers trained on the fixture environment, and their exports (shared by the runtime tests).

Three runs cover what the exporter must carry: the shipped recipe's shape (planner prior +
residual network) with raw observations, the same with VecNormalize observation
normalisation (norm_obs: true), and a plain masked MLP on the observation. Their action
heads are then scaled up so that the network's logits are of the prior's size: parity is
tested where the residual network decides, not only where the prior does.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from _envdata import write_env

_PRIOR = {"features_extractor_class": "adascale_rl.policies.prior.PlannerPrior",
          "features_extractor_kwargs": {"temperature": 0.003, "horizon": 8.0, "sigma": 0.2}}
RECIPES = {
    "prior": {"policy": "adascale_rl.policies.prior.PriorMaskablePolicy",
              "normalize": {"norm_obs": False, "norm_reward": True},
              "policy_kwargs": {"net_arch": {"pi": [16, 16], "vf": [16, 16]}, **_PRIOR}},
    "prior-norm": {"policy": "adascale_rl.policies.prior.PriorMaskablePolicy",
                   "normalize": {"norm_obs": True, "norm_reward": True},
                   "policy_kwargs": {"net_arch": {"pi": [16, 16], "vf": [16, 16]}, **_PRIOR}},
    "mlp": {"policy": "MlpPolicy", "normalize": {"norm_obs": True, "norm_reward": True},
            "policy_kwargs": "dict(net_arch=[16, 16], activation_fn=nn.ReLU)"},
}
_COMMON = {"n_envs": 2, "n_timesteps": 256, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "gamma": 0.97}


@pytest.fixture(scope="session")
def fixture_env_yaml(tmp_path_factory):
    """The fixture environment of tests/_envdata.py as a spec YAML (what --env PATH takes)."""
    tmp = tmp_path_factory.mktemp("env")
    spec = write_env(tmp, steps=60)
    doc = {k: getattr(spec, k) for k in ("id", "description", "device", "catalog", "dataset", "reward", "period_s",
                                         "max_episode_steps")}
    path = tmp / "Fixture-Test.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _train(kind: str, env_yaml, out):
    from sb3_contrib import MaskablePPO

    from adascale_rl.policies.ppo import train

    hp = out.parent / f"{kind}.yml"
    hp.write_text(yaml.safe_dump({"default": {**_COMMON, **RECIPES[kind]}}))
    run = train(str(env_yaml), timesteps=256, out=out, hyperparams=hp, eval_freq=128, progress=False)
    model = MaskablePPO.load(str(run / "best_model.zip"), device="cpu")
    import torch as th

    gen = th.Generator().manual_seed(1)
    with th.no_grad():  # the network's logits of the prior's size (hundreds): the residual decides too
        head = model.policy.action_net
        head.weight.copy_(th.randn(head.weight.shape, generator=gen) * 40.0)
        head.bias.copy_(th.randn(head.bias.shape, generator=gen) * 20.0)
    model.save(str(run / "best_model.zip"))
    return run


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, fixture_env_yaml):
    root = tmp_path_factory.mktemp("runs")
    return {kind: _train(kind, fixture_env_yaml, root / kind) for kind in RECIPES}


@pytest.fixture(scope="session")
def exported(trained_runs, tmp_path_factory):
    from adascale_rl.runtime.export import export_controller

    root = tmp_path_factory.mktemp("exported")
    return {kind: export_controller(run, root / kind) for kind, run in trained_runs.items()}


@pytest.fixture
def folder(exported, tmp_path):
    """A fresh copy of the prior controller's export, for tests that damage it."""
    import shutil

    dst = tmp_path / "exported"
    shutil.copytree(exported["prior"], dst)
    return dst


def observations_of(env, n: int, seed: int = 0) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    rows = [obs]
    rng = np.random.default_rng(seed)
    while len(rows) < n:
        obs, _, _, done, info = env.step(int(rng.choice(np.flatnonzero(info_mask(env)))))
        rows.append(obs)
        if done:
            obs, _ = env.reset(seed=seed + len(rows))
    return np.array(rows, dtype=np.float32)


def info_mask(env) -> np.ndarray:
    return env.unwrapped.action_masks()
