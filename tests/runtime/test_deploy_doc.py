"""docs/DEPLOY.md: its inference loop runs as written, in a process without the training stack."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md"
pytestmark = pytest.mark.skipif(not DOC.exists(), reason="docs/ is not installed with the package")


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "DEPLOY.md should hold one Python example"
    return blocks[0]


def test_the_example_is_at_most_15_lines():
    assert len(_example().strip().splitlines()) <= 15


@pytest.mark.slow
def test_the_inference_loop_runs_as_written(tmp_path, fixture_env_yaml):
    """The folder the doc names, exported as the doc says (here on the fixture environment, quickly), then the
    example verbatim, with torch, Stable-Baselines3 and Gymnasium made unimportable."""
    res = subprocess.run([sys.executable, "-m", "adascale_rl.cli", "export", "--policy", "planner", "--env",
                          str(fixture_env_yaml), "--quick", "--out", "rpi4-selector"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    guard = ("import sys\n"
             "class _Forbid:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('torch', 'stable_baselines3', 'sb3_contrib', 'gymnasium'):\n"
             "            raise ImportError(name)\n"
             "sys.meta_path.insert(0, _Forbid())\n")
    res = subprocess.run([sys.executable, "-c", guard + _example()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.split()[2] == "ok" for line in lines), res.stdout
    variants = {line.split()[1] for line in lines}
    assert variants <= {"big", "mid", "small", "tiny"}
