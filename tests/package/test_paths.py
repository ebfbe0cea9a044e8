"""Shipped data is found by name, by the repository-relative path the README writes, or as a path on disk."""

import pytest

from adascale_rl import paths


def test_shipped_names_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no agents/ or traces/ here
    by_name = paths.resolve("Rpi4-Vision/ppo", "agents")
    assert by_name == paths.data_root() / "agents" / "Rpi4-Vision" / "ppo" and by_name.is_dir()
    assert paths.resolve("agents/Rpi4-Vision/ppo", "agents") == by_name
    assert paths.resolve("traces/rpi4-sim-v2", "traces") == paths.resolve("rpi4-sim-v2", "traces")
    with pytest.raises(FileNotFoundError, match="no shipped agent of that name"):
        paths.resolve("agents/NoSuch-Env/ppo", "agents")


def test_a_path_on_disk_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "agents" / "Rpi4-Vision" / "ppo"
    mine.mkdir(parents=True)
    assert paths.resolve("agents/Rpi4-Vision/ppo", "agents") == mine.resolve()
