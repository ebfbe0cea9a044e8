"""The observation encoder against a plain, feature-by-feature statement of FEATURES."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adascale_rl.device.catalog import validate
from adascale_rl.device.presets import load_device
from adascale_rl.environment.observation import FEATURES, FEEDBACK_START, N_CONTEXT, Feedback, ObservationEncoder
from _envdata import LADDER, make_catalog_doc

CAT = validate(make_catalog_doc(LADDER))


def _clip(x, lo, hi):
    return lo if x < lo else hi if x > hi else x


def reference(enc: ObservationEncoder, r: dict, loaded: int, fb: Feedback | None) -> np.ndarray:
    """FEATURES as their docs state them, one small expression each (the encoder inlines these)."""
    d = enc.device
    ref_ms = enc.reference_latency_ms
    mem_scale = 2.0 * max(v.peak_mem_mb for v in enc.catalog.variants)
    span = max(d.throttle_c - 25.0, 1.0)
    freq, batt, temp = r.get("freq_mhz"), r.get("battery_pct"), r.get("temp_c")
    mem = d.mem_total_mb if r.get("mem_avail_mb") is None else r["mem_avail_mb"]
    deadline = r.get("deadline_ms") or 100.0
    rate = 10.0 if r.get("request_rate_hz") is None else r["request_rate_hz"]
    f = {
        "clock_frac": 1.0 if freq is None else _clip(freq / d.f_max_mhz, 0.0, 1.0),
        "clock_missing": float(freq is None),
        "bg_cpu_util": r.get("bg_cpu_util") or 0.0,
        "bg_runnable_per_core": _clip((r.get("bg_cpu_util") or 0.0) if r.get("bg_runnable") is None
                                      else r["bg_runnable"] / d.cores, 0.0, 4.0),
        "mem_avail_frac": _clip(mem / d.mem_total_mb, 0.0, 1.0),
        "mem_fit_largest": _clip(mem / mem_scale, 0.0, 1.0),
        "battery_frac": 1.0 if batt is None else batt * 0.01,
        "battery_missing": float(batt is None),
        "plugged": 1.0 if r.get("plugged") is None else float(bool(r["plugged"])),
        "temp_headroom": 1.0 if temp is None else _clip((d.throttle_c - temp) / span, -1.0, 2.0),
        "temp_missing": float(temp is None),
        "deadline_log": _clip(math.log2(deadline / ref_ms) * 0.25, -2.0, 2.0),
        "load_log": _clip(math.log2(max(rate * ref_ms * 0.001, 1e-3)) * 0.25, -3.0, 2.0),
    }
    if fb is None:
        f.update(dict.fromkeys([x.name for x in FEATURES[FEEDBACK_START:]], 0.0))
    else:
        lat = max(fb.latency_ms, 1e-6)
        f.update({
            "last_latency_log": _clip(math.log2(lat / deadline) * 0.25, -3.0, 2.0),
            "last_slowdown_log": _clip(math.log2(lat / enc.catalog.variants[fb.variant].latency_ms) * 0.5, -1.0, 2.0),
            "slowdown_ema_log": _clip(fb.slowdown_ema_log2 * 0.5, -1.0, 2.0),
            "last_miss_rate": fb.miss_rate,
            "last_energy_frac": _clip(fb.energy_j / (d.dyn_w_max * enc.period_s), 0.0, 1.0),
            "last_switched": float(fb.switched),
            "last_oom": float(fb.oom),
        })
    one_hot = [1.0 if i == loaded else 0.0 for i in range(enc.n_variants)]
    return np.array([f[x.name] for x in FEATURES] + one_hot, dtype=np.float32)


def _random_case(rng, enc):
    d = enc.device

    def maybe(x):
        return None if rng.random() < 0.15 else x

    # ranges reach past every clipping bound
    r = {"freq_mhz": maybe(float(rng.uniform(-100, 1.5 * d.f_max_mhz))), "bg_cpu_util": maybe(float(rng.random())),
         "bg_runnable": maybe(float(rng.uniform(0, 6 * d.cores))),
         "mem_avail_mb": maybe(float(rng.uniform(-10, 1.5 * d.mem_total_mb))),
         "battery_pct": maybe(float(rng.uniform(0, 100))), "plugged": maybe(bool(rng.random() < 0.5)),
         "temp_c": maybe(float(rng.uniform(-40, 200))),
         "request_rate_hz": maybe(float(rng.choice([0.0, 1e-4, 3.0, 1e4]))),
         "deadline_ms": maybe(float(rng.choice([0.0, 1e-3, 5.0, 150.0, 1e6])))}
    fb = None
    if rng.random() < 0.8:
        fb = Feedback(float(rng.choice([0.0, 1e-9, 3.0, 80.0, 1e7])), int(rng.integers(enc.n_variants)),
                      float(rng.random()), float(rng.uniform(-1, 50)), bool(rng.random() < 0.5),
                      bool(rng.random() < 0.5), float(rng.uniform(-5, 5)))
    return r, int(rng.integers(enc.n_variants)), fb


@pytest.mark.parametrize("device", ["rpi4", "pixel4"])
def test_encoder_equals_the_feature_by_feature_statement_exactly(device):
    enc = ObservationEncoder(load_device(device), CAT, 1.0)
    assert enc.size == N_CONTEXT + len(CAT)
    rng = np.random.default_rng(0)
    buf = np.full(enc.size, 7.0, dtype=np.float32)
    for _ in range(2000):
        r, loaded, fb = _random_case(rng, enc)
        want = reference(enc, r, loaded, fb)
        got = enc.encode(r, loaded, fb)
        assert got.dtype == np.float32 and got.flags.writeable and got.flags.owndata
        np.testing.assert_array_equal(got, want)
        # into a reused buffer (last filled for another variant), and with a plain tuple as feedback
        assert enc.encode(r, loaded, None if fb is None else tuple(fb), out=buf) is buf
        np.testing.assert_array_equal(buf, want)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_value_beyond_float32_is_encoded_as_numpy_encodes_it():
    """The fast path packs the context values with struct, which refuses a finite value beyond float32's range;
    the encoder then writes them as numpy does (inf), the same as into a buffer."""
    enc = ObservationEncoder(load_device("rpi4"), CAT, 1.0)
    r = {"bg_cpu_util": 1e39, "freq_mhz": 1000.0}  # bg_cpu_util is not clipped (the schema bounds it)
    got = enc.encode(r, 0, None)
    assert got[[f.name for f in FEATURES].index("bg_cpu_util")] == np.inf
    np.testing.assert_array_equal(got, enc.encode(r, 0, None, out=np.zeros(enc.size, dtype=np.float32)))
    np.testing.assert_array_equal(got, reference(enc, r, 0, None))


@pytest.mark.parametrize("device", ["rpi4", "pixel4"])
def test_the_batched_encoder_is_the_encoder_row_by_row(device):
    """encode_batch (the vector environment's) against encode_values (the single environment's) on 12,000
    random rows, with each optional sensor missing in whole batches and with and without feedback: equal
    to within one float32 ulp (numpy's log2 against math's), and in practice bit for bit."""
    enc = ObservationEncoder(load_device(device), CAT, 1.0)
    rng = np.random.default_rng(1)
    d = enc.device
    keys = ("freq_mhz", "bg_cpu_util", "bg_runnable", "mem_avail_mb", "battery_pct", "plugged", "temp_c",
            "request_rate_hz", "deadline_ms")
    differ = 0
    for batch in range(24):
        b = 500
        cols = {"freq_mhz": rng.uniform(-100, 1.5 * d.f_max_mhz, b), "bg_cpu_util": rng.random(b),
                "bg_runnable": rng.uniform(0, 6 * d.cores, b), "mem_avail_mb": rng.uniform(-10, 1.5 * d.mem_total_mb, b),
                "battery_pct": rng.uniform(0, 100, b), "plugged": rng.random(b) < 0.5, "temp_c": rng.uniform(-40, 200, b),
                "request_rate_hz": rng.choice([0.0, 1e-4, 3.0, 1e4], b) * rng.uniform(0.5, 2, b),
                "deadline_ms": rng.choice([0.0, 1e-3, 5.0, 150.0, 1e6], b) * rng.uniform(0.5, 2, b)}
        for k in ("freq_mhz", "bg_runnable", "battery_pct", "plugged", "temp_c", "mem_avail_mb",
                  "request_rate_hz", "deadline_ms"):
            if rng.random() < 0.2:
                cols[k] = None  # a sensor missing in the whole batch
        loaded = rng.integers(enc.n_variants, size=b)
        fb = None
        if batch % 3:
            fb = (rng.choice([0.0, 1e-9, 3.0, 80.0, 1e7], b) * rng.uniform(0.5, 2, b), rng.integers(enc.n_variants, size=b),
                  rng.random(b), rng.uniform(-1, 50, b), rng.random(b) < 0.5, rng.random(b) < 0.5, rng.uniform(-5, 5, b))
        got = enc.encode_batch(*(cols[k] for k in keys), loaded, fb)
        assert got.shape == (b, enc.size) and got.dtype == np.float32
        for j in range(b):
            row = [None if cols[k] is None else cols[k][j].item() for k in keys]
            f = None if fb is None else Feedback(*(x[j].item() for x in fb))
            want = enc.encode_values(*row, int(loaded[j]), f)
            np.testing.assert_array_max_ulp(got[j], want, maxulp=1)
            differ += int((got[j] != want).any())
    assert differ <= 12  # at most one row in a thousand is an ulp off
