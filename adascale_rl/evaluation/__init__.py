"""Evaluation: episodes on identical traces and noise, tuning on train, aggregation, reports."""

from adascale_rl.evaluation.core import EpisodeResult, aggregate, ci95, evaluate, run_episode, tune

__all__ = ["EpisodeResult", "aggregate", "ci95", "evaluate", "run_episode", "tune"]
