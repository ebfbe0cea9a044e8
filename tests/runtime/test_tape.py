"""The compiled forward (runtime/tape.py) computes what the shared numpy functions compute."""

from __future__ import annotations

import io
import math
import tokenize

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adascale_rl.environment.env import AdaScaleEnv
from adascale_rl.environment.observation import FEATURES, INDEX, N_CONTEXT, decode_planning
from adascale_rl.policies import planning
from adascale_rl.policies.prior import PlannerPrior
from adascale_rl.runtime import tape
from adascale_rl.runtime.numpy_policy import NumpyPolicy

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def prior_fn():
    """The learned controller's prior and slack on the Rpi4 catalog (19 variants), as a traced function."""
    env = AdaScaleEnv("Rpi4-Vision", split="test")
    kw = PlannerPrior.kwargs_for(env)
    section = {"slack": True, "table": kw["table"], "encoder": kw["encoder"], "obs_norm": None,
               "prior": {"sigma": 0.2, "horizon": 8.0, "temperature": 0.003, "period_s": 1.0,
                         "reward": {**kw["reward"]}},
               "net": {"activation": "tanh", "hidden": []}}
    n = len(env.catalog)
    arrays = {"action_w": np.zeros((env.encoder.size + n, n + 1), np.float32), "action_b": np.zeros(n + 1, np.float32)}
    pol = NumpyPolicy(section, arrays, env.encoder.size, n + 1)

    def fn(xp, obs):
        x, slack, prior = pol.features_and_prior(xp, obs)
        return slack, prior

    obs, _ = env.reset(seed=0)
    return fn, obs, env


def _observation(draw, size, n, wide=False):
    vals = []
    for f in FEATURES:
        if wide:
            vals.append(draw(st.floats(-1e3, 1e3, allow_nan=False)))
        elif f.unit == "flag":
            vals.append(float(draw(st.booleans())))
        else:
            vals.append(draw(st.floats(f.low, f.high, allow_nan=False)))
    onehot = [0.0] * n
    onehot[draw(st.integers(0, n - 1))] = 1.0
    return np.array(vals + onehot, dtype=np.float32)


@st.composite
def observations(draw, wide=False):
    return _observation(draw, N_CONTEXT + 19, 19, wide)


@pytest.mark.parametrize("pack", [True, False])
@SETTINGS
@given(o=observations())
def test_compiled_program_equals_the_shared_functions_on_any_observation(prior_fn, pack, o):
    fn, example, _ = prior_fn
    prog = _programs(prior_fn)[pack]
    got = prog(o)
    want = fn(tape.NUMPY, o.astype(np.float64)[None])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(w)))))


@SETTINGS
@given(o=observations(wide=True))
def test_values_outside_the_bounds_give_numpys_answer_even_inf_and_nan(prior_fn, o):
    """A Python float raises where numpy returns inf or nan (exp overflow, log of 0): the program then hands
    the call to the eager numpy functions, so the answer is numpy's either way."""
    fn = prior_fn[0]
    with np.errstate(all="ignore"):
        got = _programs(prior_fn)[True](o)
        want = fn(tape.NUMPY, o.astype(np.float64)[None])
    for g, w in zip(got, want):
        assert np.array_equal(np.isfinite(g), np.isfinite(w))
        fin = np.isfinite(w)
        np.testing.assert_allclose(np.asarray(g)[fin], np.asarray(w)[fin], rtol=1e-9,
                                   atol=1e-9 * max(1.0, float(np.max(np.abs(w[fin]), initial=0.0))))


def test_an_overflow_takes_the_eager_path(prior_fn):
    fn, example, _ = prior_fn
    prog = tape.trace(fn, example)
    o = example.copy()
    o[INDEX["load_log"]] = 300.0  # exp(300 x 4 ln 2) overflows a Python float
    with np.errstate(all="ignore"):
        want = fn(tape.NUMPY, o.astype(np.float64)[None])
        got = prog(o)
    assert prog.fallbacks == 1
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))


_CACHE: dict = {}


def _programs(prior_fn):
    key = id(prior_fn[0])
    if key not in _CACHE:
        fn, example, _ = prior_fn
        _CACHE[key] = {True: tape.trace(fn, example, pack=True), False: tape.trace(fn, example, pack=False)}
    return _CACHE[key]


def test_packing_isomorphic_chains_saves_operations(prior_fn):
    progs = _programs(prior_fn)
    assert progs[True].operations < 0.75 * progs[False].operations


def test_the_generated_source_holds_no_number_from_the_folder(prior_fn):
    """Only operator names, slot names and whole-number slot indices: every constant (catalog, reward,
    weights) is passed in by name, so nothing read from an exported folder becomes code."""
    src = _programs(prior_fn)[True].source
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    numbers = [t.string for t in toks if t.type == tokenize.NUMBER]
    assert numbers and all(s.isdigit() for s in numbers), numbers
    strings = {t.string for t in toks if t.type == tokenize.STRING}
    assert strings <= {"'same_kind'"}
    _, _, env = prior_fn
    for x in env.physics.table.latency_ms:
        assert repr(float(x)) not in src


def test_branching_on_a_traced_value_is_refused():
    def fn(xp, obs):
        return (xp.exp(obs) if obs[:, 0:1] > 0 else obs,)

    with pytest.raises(tape.TraceError, match="branches on a value"):
        tape.trace(fn, np.ones(3))


def test_decode_planning_slices_compile_to_views(prior_fn):
    fn = lambda xp, obs: (decode_planning(obs, f_max_mhz=1500.0, ref_ms=100.0, cores=4.0, n_variants=19,  # noqa
                                          xp=xp)["loaded"] * 2.0,)
    _, example, _ = prior_fn
    prog = tape.trace(fn, example)
    o = example.copy()
    o[N_CONTEXT:] = 0.0
    o[N_CONTEXT + 5] = 1.0
    np.testing.assert_array_equal(prog(o)[0][0], 2.0 * o[N_CONTEXT:])
    assert math.isfinite(prog.operations)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, math.inf, -math.inf, math.nan, 1e308, -1e308]),
                min_size=1, max_size=24))
def test_first_argmax_is_numpys_argmax_ties_infinities_and_nan_included(values):
    from adascale_rl.runtime.numpy_policy import first_argmax

    a = np.asarray(values, dtype=np.float64)
    assert first_argmax(a) == int(a.argmax())
    with np.errstate(over="ignore"):  # +-1e308 become +-inf in float32, as intended
        a32 = a.astype(np.float32)
    assert first_argmax(a32) == int(a32.argmax())
