"""The benchmark's plots (adascale_rl/evaluation/plots.py)."""

from __future__ import annotations

import warnings

import pytest

from adascale_rl.evaluation.plots import plot_returns


@pytest.mark.parametrize("returns", [(-6.4,), (-6.4, -1.2), (9.8, -6.4), (196.3,)])
def test_returns_plot_lays_out_without_a_warning_whatever_the_signs(tmp_path, returns):
    """One policy or several, every return negative (a live run whose requests all missed) or not: the bars, their
    labels and the legend fit (matplotlib warned 'Tight layout not applied' when every return was negative, the
    labels then sitting right of 0, outside the axes)."""
    rows = [{"env": "AdaScale/Local-Digits-v4", "policy": f"p{i}", "kind": "heuristic", "mean_return": r,
             "ci95_return": 0.5, "episodes": 3} for i, r in enumerate(returns)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_returns(rows, tmp_path / "returns.png")
    assert (tmp_path / "returns.png").stat().st_size > 1000
