"""The selector runs where torch, Stable-Baselines3 and Gymnasium cannot even be imported.

Everything the package depends on besides numpy, psutil and PyYAML is made unimportable (and
ONNX): what ``pip install --no-deps adascale-rl && pip install numpy psutil pyyaml`` gives a
device (docs/DEPLOY.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCKED = ("torch", "stable_baselines3", "sb3_contrib", "gymnasium", "onnx", "onnxruntime", "tqdm", "rich",
           "matplotlib", "tensorboard", "sklearn", "scipy", "torch_pruning", "PIL", "pandas")

_CHILD = textwrap.dedent("""
    import json, sys
    BLOCKED = {blocked!r}

    class Forbid:
        # a meta-path finder that makes importing the training stack fail, first in line
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is forbidden in this process")
            return None

    sys.meta_path.insert(0, Forbid())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker does not work")

    from adascale_rl.runtime import Selector

    sel = Selector.load({folder!r}, backend={backend!r})
    sel.set_mode(rate_hz=8, deadline_ms=150)
    first = sel.select()
    sel.report(42.0)
    second = sel.select()
    sel.close()
    print(json.dumps({{"variants": sel.variants, "choices": [first, second], "status": sel.status,
                      "backend": sel.backend,
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
""")


def _run(folder, backend="numpy"):
    code = _CHILD.format(blocked=BLOCKED, folder=str(folder), backend=backend)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_selector_load_and_select_without_torch_sb3_or_gymnasium(exported):
    out = _run(exported["prior"])
    assert out["status"] == "ok" and out["backend"] == "numpy"
    assert all(c in out["variants"] for c in out["choices"]) and out["variants"] == ["big", "mid", "small", "tiny"]
    assert out["loaded"] == []


def test_a_network_with_normalised_observations_and_a_heuristic_too(exported, fixture_env_yaml, tmp_path):
    from adascale_rl.evaluation.bench import tuned_policy
    from adascale_rl.runtime.export import export_heuristic

    heuristic = export_heuristic("planner", str(fixture_env_yaml), tmp_path / "planner", tune=tuned_policy,
                                 quick=True)
    for folder in (exported["prior-norm"], exported["mlp"], heuristic):
        out = _run(folder)
        assert out["status"] == "ok" and out["loaded"] == [], out
        assert all(c in out["variants"] for c in out["choices"])


def test_asking_for_onnx_runtime_where_it_cannot_be_imported_uses_numpy(exported):
    out = _run(exported["prior"], backend="onnxruntime")
    assert out["backend"] == "numpy" and out["status"] == "ok" and out["loaded"] == []
