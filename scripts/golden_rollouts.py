"""Golden rollouts: prove that a change to the environment's code left its behaviour bit-identical.

    python scripts/golden_rollouts.py save before.pkl     # on the code before the change
    python scripts/golden_rollouts.py check before.pkl    # on the code after it; exit 1 on any difference

Plays every registered environment (several splits, reward presets, ansi rendering, random
start variants) and two purpose-made ones (tight memory, battery drain, zero request rates,
clock caps: OOM kills and the battery saver happen) with seeded mixed actions -- valid ones,
keeps in both spellings and some masked ones -- across repeated resets with and without
seeds and options. Every reset and step is recorded exactly: observation bytes and dtype,
reward, flags, every ``info`` value with its type and the key order, the action mask, the
simulator state, the RNG state and the episode's noise. Used for the speed work on
``DevicePhysics.step``, the encoder and the mask (docs/BENCHMARKS.md, "Environment speed").
To compare with an older commit, run ``save`` from a checkout of it with this file copied in.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import adascale_rl  # noqa: E402,F401  (registers the ids)
from adascale_rl.environment.registration import registered_specs  # noqa: E402


def canon(v):
    if isinstance(v, np.ndarray):
        return ("nd", v.dtype.str, v.shape, v.tobytes())
    return (type(v).__name__, repr(v))


def rollout(env_id, kwargs, seed):
    if isinstance(env_id, str):
        env = gym.make(env_id, **kwargs)
    else:
        from adascale_rl.environment.env import AdaScaleEnv
        env = AdaScaleEnv(env_id, **kwargs)
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    rec = []
    resets = [dict(seed=seed), dict(seed=seed + 1), dict(), dict(seed=seed + 2, options={"trace": 0, "start": 0}),
              dict(options={"variant": 0}), dict(seed=seed + 3, options={"start": 3}),
              dict(seed=seed + 4, options={"trace": len(u.exo) - 1, "variant": len(u.catalog) - 1}), dict(seed=None)]
    for i, kw in enumerate(resets * 2):
        obs, info = env.reset(**kw)
        rec.append(("reset", canon(obs), {k: canon(v) for k, v in info.items()}, canon(u.action_masks()),
                    canon(u.np_random.bit_generator.state), repr(u.sim_state),
                    [n.latency for n in u.episode.noise], u.episode.trace, u.episode.start))
        steps = int(rng.integers(50, 400))
        for _ in range(steps):
            m = u.action_masks()
            p = rng.random()
            if p < 0.1:
                a = int(rng.integers(0, u.action_space.n))  # masked ones too: OOM paths
            elif p < 0.45:
                a = 0 if p < 0.3 else u.sim_state.loaded + 1  # keeps, both spellings
            else:
                a = int(rng.choice(np.flatnonzero(m)))
            obs, r, term, trunc, info = env.step(a)
            rec.append(("step", a, canon(obs), canon(r), canon(term), canon(trunc),
                        {k: canon(v) for k, v in info.items()}, list(info), canon(u.action_masks()), repr(u.sim_state),
                        u.render() if u.render_mode else None))
            if term or trunc:
                break
    return rec


def fixture_specs(tmp: Path):
    sys.path.insert(0, str(ROOT / "tests"))
    from _envdata import constant_trace, write_env
    out = []
    for dev in ("pixel4", "rpi4"):
        rng = np.random.default_rng(5)
        def tr(n):
            return constant_trace(n, mem_avail_mb=rng.choice([30.0, 50.0, 70.0, 90.0, 130.0, 2000.0], n),
                                  request_rate_hz=rng.choice([0.0, 4.0, 8.0, 30.0], n),
                                  deadline_ms=rng.choice([10.0, 60.0, 150.0], n),
                                  battery_pct=np.linspace(30, 1, n), plugged=rng.random(n) < 0.2,
                                  ambient_temp_c=rng.choice([20.0, 45.0], n), bg_cpu_util=rng.random(n),
                                  **({"freq_cap_mhz": rng.choice([600.0, 1200.0, 2000.0], n)} if dev == "pixel4" else {}))
        d = tmp / dev
        d.mkdir()
        out.append(write_env(d, device=dev, train={f"t{i}": tr(150) for i in range(4)}, test={"e0": tr(100)},
                             steps=120))
    return out


def record() -> dict:
    res = {}
    tmp = Path(tempfile.mkdtemp(prefix="golden-"))
    try:
        for fs in fixture_specs(tmp):
            for kwargs in ({}, {"split": "test"}):
                for seed in (0, 3):
                    res[(fs.device, repr(kwargs), seed)] = rollout(fs, kwargs, seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for s in registered_specs():
        for kwargs in ({}, {"split": "test"}, {"split": "val", "reward": "energy-saver", "render_mode": "ansi"},
                       {"split": "all", "random_start_variant": True, "reward": "latency-critical"}):
            for seed in (0, 17):
                res[(s.id, repr(kwargs), seed)] = rollout(s.id, kwargs, seed)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("save", "check"))
    ap.add_argument("file", type=Path)
    a = ap.parse_args(argv)
    if a.mode == "check" and not a.file.is_file():
        ap.error(f"{a.file} does not exist; make it with: save {a.file}")
    res = record()
    n = sum(len(v) for v in res.values())
    if a.mode == "save":
        with open(a.file, "wb") as fh:
            pickle.dump(res, fh)
        print(f"saved {n} records to {a.file}")
        return 0
    with open(a.file, "rb") as fh:
        ref = pickle.load(fh)
    bad = sorted(set(ref) ^ set(res), key=repr)
    for k in bad:
        print("only in one of the two:", k)
    for k in ref.keys() & res.keys():
        if ref[k] != res[k]:
            bad.append(k)
            i = next((i for i, (x, y) in enumerate(zip(ref[k], res[k])) if x != y), min(len(ref[k]), len(res[k])))
            print(f"DIFF {k} at record {i}")
    print("IDENTICAL" if not bad else f"{len(bad)} rollouts differ", n, "records")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
