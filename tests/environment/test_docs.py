"""docs/ENVIRONMENT.md stays true to the code it describes."""

from pathlib import Path

from adascale_rl.environment.observation import FEATURES
from adascale_rl.environment.reward import PRESETS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "ENVIRONMENT.md").read_text()


def test_every_observation_feature_is_documented():
    for f in FEATURES:
        assert f"`{f.name}`" in DOC, f.name


def test_reward_preset_table_matches_the_presets():
    for name, r in PRESETS.items():
        row = next(line for line in DOC.splitlines() if line.startswith(f"  | {name} |"))
        cells = [c.strip() for c in row.strip().strip("|").split("|")][1:]
        assert [float(c) for c in cells] == [r.w_accuracy, r.w_miss, r.w_energy, r.w_mem, r.w_switch, r.w_oom], name
