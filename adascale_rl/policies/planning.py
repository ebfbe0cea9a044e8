"""The reward-aware planner's prediction, written once for numpy and torch.

For every variant it predicts the coming interval's reward from what a device knows: the
measured clock and background run queue, the app's rate and deadline, the slow-down the
app measured against its own performance model, the loaded variant and whether the app was
just OOM-killed, run through the one performance model
(:func:`adascale_rl.device.model.outcome`) and the environment's reward
(:class:`adascale_rl.environment.reward.ScaledReward`). The planner heuristic
(:class:`adascale_rl.policies.heuristics.PlannerPolicy`, numpy) and the learned
controller's prior (:class:`adascale_rl.policies.prior.PlannerPrior`, torch, exported to
ONNX and numpy with the controller) both call :func:`predicted_rewards` and
:func:`action_values`; the learned controller's extra features are :func:`slack`.
"""

from __future__ import annotations

from typing import Any

from adascale_rl.device import model
from adascale_rl.device.model import VariantTable


def predicted_rewards(table: VariantTable, arrays: dict, reward: Any, ctx: dict, sigma: float, dt_s: float,
                      xp=None) -> tuple[Any, Any]:
    """(reward if each variant runs without loading, reward of the interval that loads it), each ``(B, n)``.

    ``ctx`` holds ``(B, 1)`` arrays ``freq_mhz``, ``bg_runnable``, ``rate_hz``, ``deadline_ms``,
    ``slowdown`` (a factor on the isolated service time), ``killed`` (bool) and ``(B, n)``
    ``loaded`` (one-hot), as :func:`adascale_rl.environment.observation.decode_planning` gives
    them. ``sigma`` is the frame jitter the planner assumes (a tuned margin); ``reward`` a
    :class:`~adascale_rl.environment.reward.ScaledReward`. The loading interval counts the
    load time's lost requests and energy and the old and new variants resident together
    (after an OOM kill nothing is resident: every choice loads, alone).
    """
    xp = xp or model.namespace(arrays["latency_ms"], ctx["freq_mhz"])
    kw = dict(freq_mhz=ctx["freq_mhz"], bg_runnable=ctx["bg_runnable"], rate_hz=ctx["rate_hz"],
              deadline_ms=ctx["deadline_ms"], dt_s=dt_s, noise=ctx["slowdown"], xp=xp, sigma=sigma)
    keep = model.outcome(table, arrays, loading=False, **kw)
    load = model.outcome(table, arrays, loading=True, **kw)
    peak = arrays["peak_mem_mb"]
    killed = ctx["killed"]
    loaded = ctx["loaded"]
    acc = arrays["accuracy"]
    r_keep = reward.total(acc, keep.serving.on_time_frac, keep.energy_j, peak, 0.0, 0.0)
    r_load_alone = reward.total(acc, load.serving.on_time_frac, load.energy_j, peak, 1.0, 0.0)
    peak_loaded = xp.sum_last(loaded * peak)
    r_switch = reward.total(acc, load.serving.on_time_frac, load.energy_j, peak + peak_loaded - table.overhead_mb,
                            1.0, 0.0)
    # after a kill even the same variant loads again (no switch penalty for the same variant is
    # not worth a special case: the environment counts a restart as no switch, the difference is w_switch)
    keep_value = xp.where(killed, r_load_alone + reward.weights.w_switch, r_keep)
    switch_value = xp.where(killed, r_load_alone, r_switch)
    return keep_value, switch_value


def action_values(keep, switch, loaded, killed, horizon: float, xp=None):
    """Values of the ``1 + n`` actions ``(B, 1 + n)``: keep, then each variant.

    A switch's first interval pays the load; the ``horizon - 1`` after it run steady, so its
    value is ``(switch + (horizon - 1) x keep) / horizon`` (amortised). Asking for the loaded
    variant is a keep. After an OOM kill every choice loads: no amortisation.
    """
    xp = xp or model.namespace(keep)
    amortised = xp.where(killed, switch, (switch + (horizon - 1.0) * keep) / horizon)
    value = loaded * keep + (1.0 - loaded) * amortised
    return xp.concat_last([xp.sum_last(loaded * keep), value])


def slack(table: VariantTable, arrays: dict, ctx: dict, xp=None):
    """Per variant ``(B, n)``: log2(latency budget / the performance model's predicted mean response time) / 4,
    clipped to [-1, 1], where the budget is min(deadline, 1 / rate): the quantity the greedy heuristics
    threshold on, and the features :class:`~adascale_rl.policies.prior.VariantSlack` adds to the observation
    (``ctx`` as :func:`adascale_rl.environment.observation.decode_planning` gives it)."""
    xp = xp or model.namespace(ctx["freq_mhz"])
    predicted = model.expected_latency_ms(table, arrays, freq_mhz=ctx["freq_mhz"], bg_runnable=ctx["bg_runnable"],
                                          rate_hz=ctx["rate_hz"], deadline_ms=ctx["deadline_ms"], xp=xp)
    budget = xp.minimum(ctx["deadline_ms"], 1000.0 / ctx["rate_hz"])
    return xp.clip(xp.log2(budget / predicted) / 4.0, -1.0, 1.0)
