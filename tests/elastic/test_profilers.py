import torch

from adascale_rl.elastic.extract import fuse_bn, extract_branch
from adascale_rl.elastic.network import Branch, ElasticNet
from adascale_rl.elastic.profilers import (amdahl_parallel_frac, load_torchscript, peak_memory, save_torchscript,
                                           time_variants)


def test_amdahl_fit():
    assert amdahl_parallel_frac(10.0, 10.0, 2) == 0.0
    assert abs(amdahl_parallel_frac(10.0, 5.0, 2) - 1.0) < 1e-9
    assert abs(amdahl_parallel_frac(10.0, 7.5, 2) - 0.5) < 1e-9
    assert abs(amdahl_parallel_frac(8.0, 8.0 * (0.4 + 0.6 / 4), 4) - 0.6) < 1e-9
    assert amdahl_parallel_frac(5.0, 6.0, 2) == 0.0       # slower with more threads: clamped
    assert amdahl_parallel_frac(5.0, 1.0, 2) == 1.0
    assert amdahl_parallel_frac(5.0, 5.0, 1) == 0.0


def _tiny(tiny_arch):
    torch.manual_seed(0)
    return fuse_bn(extract_branch(ElasticNet(tiny_arch).eval(), Branch(0.5, "e1", 8)))


def test_time_variants_structure_and_interleaving(tiny_arch, tmp_path):
    m = _tiny(tiny_arch)
    x = torch.randn(1, 1, 8, 8)
    save_torchscript(m, x, tmp_path / "a.pt")
    save_torchscript(fuse_bn(m), x, tmp_path / "b.pt")
    calls = []
    t = time_variants({"a": tmp_path / "a.pt", "b": tmp_path / "b.pt"}, (1, 1, 8, 8), threads=2, also_threads=(1,),
                      sessions=2, rounds=3, calls=4, warmup=1, progress=calls.append)
    for k in ("a", "b"):
        assert len(t[k].samples[2]) == 24 and len(t[k].samples[1]) == 2 * 1 * 2  # fit-only count: half effort
        assert t[k].samples_ms is t[k].samples[2]
        assert len(t[k].cpu_ms_per_call) == 6
        assert t[k].p95_ms >= t[k].median_ms > 0 and t[k].median_at(1) > 0
    assert len(calls) == 4  # 2 sessions x 2 thread counts, one probe process each


def test_torchscript_roundtrip_and_memory_probe(tiny_arch, tmp_path):
    m = _tiny(tiny_arch)
    x = torch.randn(2, 1, 8, 8)
    size = save_torchscript(m, x[:1], tmp_path / "v.pt")
    assert size == (tmp_path / "v.pt").stat().st_size > 1000
    loaded = load_torchscript(tmp_path / "v.pt")
    with torch.no_grad():
        assert torch.allclose(loaded(x), m(x), atol=1e-6)
    res = peak_memory(tmp_path / "v.pt", threads=1, shape=(1, 1, 8, 8), iters=3)
    assert res["peak_delta_mb"] >= 0 and res["baseline_rss_mb"] > 50 and res["load_and_first_ms"] > 0
