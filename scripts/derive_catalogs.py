#!/usr/bin/env python
"""Derive the shipped variant catalogs from published figures.

``python scripts/derive_catalogs.py`` rewrites ``envs/catalogs/{rpi4,jetson-nano,pixel4}.json``
byte-identically; ``--out-dir DIR`` writes them elsewhere (the tests compare the two).

Every number in a catalog comes from the published figures below (each table is a constant
with its source; see also shared/CALIBRATION.md) and from the device presets
(``envs/devices/*.yaml``, loaded with :func:`load_device`), by the rules in this file. Each
variant's ``provenance`` repeats its rule with the numbers that went in; the catalog's
``sources`` and ``calibration`` blocks hold the citations and the device-level fits the rules
refer to (``[slim]``, ``calibration.parallel_frac``), so a reader can check a value without
running the script.

The elastic model is MobileNetV2 (width x input resolution rungs of the slim README, plus
early exits), crossed with the compression operators of
:data:`adascale_rl.device.catalog.OPERATORS`. Method, per variant:

* accuracy: the slim README top-1 of the rung; compression operators subtract a published
  loss, or an assumed and labelled one where nothing is published.
* latency: the device's ncnn benchncnn MobileNetV2 1-thread time (at the preset's top clock),
  scaled to the rung by the slim README's Pixel 1 single-core latency ratio, divided by the
  operators' speed-ups, then divided by the variant's Amdahl speed-up on the device's cores.
* parallel_frac: Amdahl fit of the ncnn 1-thread / 4-thread ratio of MobileNetV2, with the
  dependence on model size fitted over the ncnn row (smaller models parallelise worse).
* compute_bound_frac: 1 minus a memory-clock-sensitive share placed inside the published
  11-48 % range by MACs, larger for int8 (assumption).
* peak_mem_mb: weights + the largest pair of live feature maps + a runtime overhead constant.
* size_mb: parameters x bytes per parameter.
* energy_mj: dynamic energy above idle = dyn_w_max x S/4 x latency.

MB in this project means MiB (2^20 bytes), as psutil reports memory to the context monitor.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from adascale_rl import paths
from adascale_rl.device.catalog import Catalog, Variant
from adascale_rl.device.presets import DevicePreset, load_device

DEVICES = ("rpi4", "jetson-nano", "pixel4")
MIB = float(2 ** 20)

# =========================================================================== published figures

SOURCES = {
    "slim": "tensorflow/models research/slim/nets/mobilenet/README.md, MobileNetV2 and MobileNetV3 ImageNet "
            "checkpoint tables: https://github.com/tensorflow/models/blob/master/research/slim/nets/mobilenet/README.md",
    "ncnn": "Tencent/ncnn benchmark/README.md, benchncnn FP32 224x224 batch 1: "
            "https://github.com/Tencent/ncnn/blob/master/benchmark/README.md",
    "tflite": "tensorflow/tensorflow tensorflow/lite/g3doc/guide/hosted_models.md, Pixel 3 CPU 4 threads: "
              "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/g3doc/guide/hosted_models.md",
    "torchvision": "pytorch/vision PR 5797: torchvision post-training int8 MobileNetV2 71.88 -> 71.66 % top-1",
    "amc": "AMC, arXiv 1802.03494 and https://github.com/mit-han-lab/amc (README): MobileNetV2 at 70 % FLOPs "
           "70.854 % top-1; MobileNetV1 at 50 % FLOPs 1.81x measured speed-up on an Android phone",
    "exit": "arXiv 1702.07811 (Adaptive Neural Networks for Efficient Inference): up to 2.8x speed-up at < 1 % "
            "top-5 loss",
    "mobilenetv2": "arXiv 1801.04381 (MobileNetV2 architecture: stages t/c/n/s, last conv 1280 kept for widths < 1)",
    "shufflenetv2": "arXiv 1807.11164: ShuffleNet V2 1x 146 MFLOPs (multiply-adds)",
    "resnet": "arXiv 1512.03385 Table 1: ResNet-18 1.8e9, ResNet-50 3.8e9 FLOPs (multiply-adds)",
    "memclk": "arXiv 2606.16106 and arXiv 2509.17970: the memory clock moves median latency by 11-48 % "
              "(shared/CALIBRATION.md)",
    "sd855": "Snapdragon 855+ prime core 2.96 GHz, gold 2.42 GHz (ncnn README section header 'Snapdragon 855+ "
             "(Kyro485 2.96 GHz + 2.42 GHz x 3 + 1.80 GHz x 4)'); Snapdragon 855 prime 2841.6 MHz, gold 2419.2 MHz "
             "(cpufreq tables, shared/CALIBRATION.md)",
    "deepen": "DeepEn2023 (SEC 2023), https://github.com/amai-gsu/DeepEn2023 model-level table: MobileNetV2 variants "
              "30.85-175.07 mJ on a phone CPU",
    "pytorch-pi4": "pytorch/tutorials intermediate_source/realtime_rpi.rst: MobileNetV2 int8 26.4 ms model time on a Pi 4",
}

# slim README MobileNetV2 table. (width, resolution): (MACs M, params M, top-1 %, top-5 %,
# TF-Lite latency on one big core of a Pixel 1, ms)
SLIM_V2: dict[tuple[float, int], tuple[float, float, float, float, float]] = {
    (1.4, 224): (582, 6.06, 75.0, 92.5, 138.0),
    (1.3, 224): (509, 5.34, 74.4, 92.1, 123.0),
    (1.0, 224): (300, 3.47, 71.8, 91.0, 73.8),
    (1.0, 192): (221, 3.47, 70.7, 90.1, 55.1),
    (1.0, 160): (154, 3.47, 68.8, 89.0, 40.2),
    (1.0, 128): (99, 3.47, 65.3, 86.9, 27.6),
    (1.0, 96): (56, 3.47, 60.3, 83.2, 17.6),
    (0.75, 224): (209, 2.61, 69.8, 89.6, 55.8),
    (0.75, 192): (153, 2.61, 68.7, 88.9, 41.6),
    (0.75, 160): (107, 2.61, 66.4, 87.3, 30.4),
    (0.75, 128): (69, 2.61, 63.2, 85.3, 21.9),
    (0.75, 96): (39, 2.61, 58.8, 81.6, 14.2),
    (0.5, 224): (97, 1.95, 65.4, 86.4, 28.7),
    (0.5, 192): (71, 1.95, 63.9, 85.4, 21.1),
    (0.5, 160): (50, 1.95, 61.0, 83.2, 14.9),
    (0.5, 128): (32, 1.95, 57.7, 80.8, 9.9),
    (0.5, 96): (18, 1.95, 51.2, 75.8, 6.4),
    (0.35, 224): (59, 1.66, 60.3, 82.9, 19.7),
    (0.35, 192): (43, 1.66, 58.2, 81.2, 14.6),
    (0.35, 160): (30, 1.66, 55.7, 79.1, 10.5),
    (0.35, 128): (20, 1.66, 50.8, 75.0, 6.9),
    (0.35, 96): (11, 1.66, 45.5, 70.4, 4.5),
}
REF_RUNG = (1.0, 224)
# slim README MobileNetV3, float -> 8-bit top-1: (MACs M, float %, 8-bit %)
V3_INT8 = {"Large": (217, 75.2, 73.9), "Small": (66, 67.5, 64.9)}

# ncnn benchncnn: device -> (README section, {model: (ms with 4 threads, ms with 1 thread)}). SqueezeNet is
# left out of the fit: the MACs of ncnn's SqueezeNet build are not established here.
NCNN: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "rpi4": ("Raspberry Pi 4 Model B, 'Cortex-A72 (ARMv8) (1.8GHz x 4)' section", {
        "ShuffleNetV2": (24.6, 42.1), "MobileNetV3-L": (47.5, 72.8), "MobileNetV2": (61.9, 93.5),
        "ResNet18": (123.1, 191.1), "ResNet50": (262.8, 534.1)}),
    "jetson-nano": ("Jetson Nano CPU", {
        "ShuffleNetV2": (19.7, 48.1), "MobileNetV3-L": (30.8, 82.0), "MobileNetV2": (33.8, 94.0),
        "ResNet18": (83.4, 221.6), "ResNet50": (204.1, 624.8)}),
    "pixel4": ("Snapdragon 855+, 4 big / 1 big cores", {
        "ShuffleNetV2": (3.0, 5.4), "MobileNetV3-L": (4.2, 8.2), "MobileNetV2": (4.7, 9.8),
        "ResNet18": (10.4, 22.1), "ResNet50": (26.2, 65.9)}),
}
# MACs (M) of the ncnn benchmark models: (value, source key)
MODEL_MACS: dict[str, tuple[float, str]] = {
    "ShuffleNetV2": (146, "shufflenetv2"),     # ncnn's shufflenet_v2.param is the 1x net (116/232/464 channels)
    "MobileNetV3-L": (217, "slim"),            # ncnn's mobilenet_v3.param is the Large net (960 -> 1280 head)
    "MobileNetV2": (300, "slim"),
    "ResNet18": (1800, "resnet"),
    "ResNet50": (3800, "resnet"),
}
NCNN_PI4_MHZ = 1800.0          # the Pi 4 rows above ran at 1.8 GHz, over the Pi 4 Model B's 1.5 GHz top
NCNN_PI4_1500_V2_MS = 72.62    # the README's older 'Cortex-A72 (1.5GHz x 4)' section (another build), 4 threads
SD855P_PRIME_MHZ, SD855_PRIME_MHZ = 2960.0, 2841.6

TFLITE_V2_FP32_MS, TFLITE_V2_INT8_MS = 17.5, 12.0          # [tflite] MobileNetV2 1.0-224
TFLITE_V2_FP32_TOP1, TFLITE_V2_INT8_TOP1 = 71.8, 70.8
AMC_V2_FLOPS, AMC_V2_TOP1 = 0.70, 70.854                   # [amc]
AMC_V1_FLOPS, AMC_V1_SPEEDUP = 0.50, 1.81
EXIT_MAX_SPEEDUP, EXIT_TOP5_LOSS_PT = 2.8, 1.0             # [exit]
MEM_SHARE_RANGE = (0.11, 0.48)                             # [memclk]
DEEPEN_V2_CPU_MJ = (30.85, 175.07)                         # [deepen]

# =========================================================================== assumptions (labelled)

RUNTIME_OVERHEAD_MIB = 20.0     # inference runtime library, thread pool, scratch and packing buffers
LOWRANK_MAC_REDUCTION = 1.3     # rank-1/2 factorisation of the pointwise convs of the widest stages
LOWRANK_TOP1_LOSS_PT = 1.5      # midpoint of an assumed 1-2 pt loss after fine-tuning
EXIT_BLOCKS = (10, 13)          # exits after the last block of the 64*w and of the 96*w stage
EXIT_MIX = (0.50, 0.25, 0.25)   # share of inputs leaving at exit 1, exit 2, the final classifier
MEM_SHARE_SLOPE = 0.05          # memory-clock share grows by this per e-fold fewer MACs
P_CLAMP = (0.05, 0.95)
N_CLASSES = 1000

# =========================================================================== rules derived from the figures

LAT_MAC_EXP = math.log(AMC_V1_SPEEDUP) / math.log(1.0 / AMC_V1_FLOPS)      # latency ~ MACs^k, k = 0.856
INT8_SPEEDUP = TFLITE_V2_FP32_MS / TFLITE_V2_INT8_MS                        # 1.458
INT8_LOSS_REF_PT = TFLITE_V2_FP32_TOP1 - TFLITE_V2_INT8_TOP1               # 1.0 pt at 300 MMACs
INT8_LOSS_EXP = (math.log((V3_INT8["Small"][1] - V3_INT8["Small"][2]) / (V3_INT8["Large"][1] - V3_INT8["Large"][2]))
                 / math.log(V3_INT8["Large"][0] / V3_INT8["Small"][0]))    # 0.582
MEM_SHARE_FLOOR_MACS = SLIM_V2[(1.4, 224)][0]                                # 582: the 11 % floor
REF_MACS = SLIM_V2[REF_RUNG][0]


def _top1_top5_loss_ratio() -> float:
    """Median, over adjacent resolution rungs of each width in the slim table, of top-1 loss / top-5 loss."""
    ratios = []
    for w in sorted({w for w, _ in SLIM_V2}):
        rungs = sorted((r for ww, r in SLIM_V2 if ww == w), reverse=True)
        for a, b in zip(rungs, rungs[1:]):
            ratios.append((SLIM_V2[(w, a)][2] - SLIM_V2[(w, b)][2]) / (SLIM_V2[(w, a)][3] - SLIM_V2[(w, b)][3]))
    return statistics.median(ratios)


TOP1_TOP5_RATIO = _top1_top5_loss_ratio()


def amdahl(p: float, n: float) -> float:
    return 1.0 / ((1.0 - p) + p / n)


def amdahl_p(speedup: float, n: float) -> float:
    """Invert S = 1/((1-p)+p/n)."""
    return (1.0 - 1.0 / speedup) / (1.0 - 1.0 / n)


def mem_share(macs: float, int8: bool) -> float:
    """Share of latency that follows the memory clock (assumption placed in the published 11-48 %)."""
    m = MEM_SHARE_RANGE[0] + MEM_SHARE_SLOPE * math.log(MEM_SHARE_FLOOR_MACS / macs)
    if int8:
        m *= INT8_SPEEDUP
    return min(max(m, MEM_SHARE_RANGE[0]), MEM_SHARE_RANGE[1])


# =========================================================================== MobileNetV2 architecture

_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(v: float, d: int = 8) -> int:
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


@dataclass(frozen=True)
class Arch:
    macs_m: float                       # whole network
    params_m: float
    peak_act: int                       # values in the largest live pair of feature maps
    peak_act_where: str
    block_macs_m: dict[int, float]      # MACs through the end of block i (1-based)
    block_channels: dict[int, int]


def mobilenet_v2(width: float, res: int) -> Arch:
    """Walk MobileNetV2 ([mobilenetv2], slim channel rounding) at a width and input resolution.

    Used for what the slim table does not give: activation sizes and per-block MACs. Its MACs
    and parameters are checked against the published table.
    """
    h = math.ceil(res / 2)
    c = _divisible(32 * width)
    macs = h * h * 3 * 9 * c
    params = 27 * c
    best = (res * res * 3 + h * h * c, f"stem conv {res}x{res}x3 -> {h}x{h}x{c}")
    block_macs, block_ch = {}, {}
    cin, blk = c, 0
    for t, ch, n, s in _V2_STAGES:
        cout = _divisible(ch * width)
        for i in range(n):
            blk += 1
            st = s if i == 0 else 1
            e, ho = cin * t, math.ceil(h / st)
            res_live = cin * h * h if (st == 1 and cin == cout) else 0
            pairs = []
            if t != 1:
                macs += h * h * cin * e
                params += cin * e
                pairs.append((h * h * (cin + e) + res_live, f"block {blk} expand {h}x{h}x{cin} -> {h}x{h}x{e}"))
            macs += ho * ho * e * 9
            params += 9 * e
            pairs.append((h * h * e + ho * ho * e + res_live, f"block {blk} depthwise {h}x{h}x{e} -> {ho}x{ho}x{e}"))
            macs += ho * ho * e * cout
            params += e * cout
            pairs.append((ho * ho * (e + cout) + res_live, f"block {blk} project {ho}x{ho}x{e} -> {ho}x{ho}x{cout}"))
            for size, where in pairs:
                if size > best[0]:
                    best = (size, where + (" + residual input" if res_live else ""))
            h, cin = ho, cout
            block_macs[blk] = macs / 1e6
            block_ch[blk] = cout
    last = _divisible(1280 * width) if width > 1.0 else 1280
    macs += h * h * cin * last + last * N_CLASSES
    params += cin * last + last * N_CLASSES
    return Arch(macs / 1e6, params / 1e6, best[0], best[1], block_macs, block_ch)


# =========================================================================== devices

@dataclass(frozen=True)
class DeviceFit:
    name: str
    preset: DevicePreset
    p_ref: float            # Amdahl parallel fraction of ncnn MobileNetV2
    slope: float            # d p / d ln(MACs), least squares over the ncnn row
    t4_anchor: float        # reference latency of w1.0-r224-fp32 at the preset's top clock (ms)
    t1_ref: float           # its single-thread latency consistent with p_ref
    anchor_published: bool
    calibration: dict[str, str]


def fit_device(name: str) -> DeviceFit:
    preset = load_device(name)
    n = preset.cores
    section, models = NCNN[name]
    xs, ys, pts = [], [], []
    for model, (t4, t1) in models.items():
        p = amdahl_p(t1 / t4, n)
        xs.append(math.log(MODEL_MACS[model][0]))
        ys.append(p)
        pts.append(f"{model} {MODEL_MACS[model][0]:g} MMACs [{MODEL_MACS[model][1]}], {t1:g}/{t4:g} ms -> p = {p:.3f}")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    t4, t1 = models["MobileNetV2"]
    p_ref = amdahl_p(t1 / t4, n)
    cbf = 1.0 - mem_share(REF_MACS, int8=False)
    published = False
    head = f"[ncnn] {section}: MobileNetV2 {t4:g} ms with {n} threads"
    if name == "pixel4":
        serial = (1.0 - p_ref) * amdahl(p_ref, n)
        adj = 1.0 + serial * cbf * (SD855P_PRIME_MHZ / SD855_PRIME_MHZ - 1.0)
        anchor = t4 * adj
        anchor_rule = (f"{head}, on a Snapdragon 855+; the Pixel 4's 855 differs only in the prime core, "
                       f"{SD855_PRIME_MHZ:g} vs {SD855P_PRIME_MHZ:g} MHz [sd855]. Assuming the serial part runs on the "
                       f"prime core and the parallel part is paced by the gold cores (2419.2 MHz on both), the serial "
                       f"share (1-p)S = {serial:.3f} of the 4-thread time slows by compute_bound_frac {cbf:.3f} x "
                       f"({SD855P_PRIME_MHZ:g}/{SD855_PRIME_MHZ:g} - 1): x{adj:.4f} -> {anchor:.3f} ms")
    elif name == "rpi4":
        f_ref = preset.f_max_mhz
        adj = cbf * (NCNN_PI4_MHZ / f_ref) + (1.0 - cbf)
        anchor = t4 * adj
        anchor_rule = (f"{head}, measured at {NCNN_PI4_MHZ:g} MHz; scaled to the preset's top clock {f_ref:g} MHz, "
                       f"only the compute-bound fraction {cbf:.3f} following the clock: x ({cbf:.3f} x "
                       f"{NCNN_PI4_MHZ:g}/{f_ref:g} + {1.0 - cbf:.3f}) = x{adj:.4f} -> {anchor:.3f} ms. Cross-check: the "
                       f"README's older 'Cortex-A72 (1.5GHz x 4)' section (another build) has MobileNetV2 "
                       f"{NCNN_PI4_1500_V2_MS:g} ms. A uniform clock change leaves t1/t4, hence p, unchanged")
    else:
        anchor = t4
        anchor_rule = (f"{head} (published; the section does not state the clock or power mode: taken as the 10 W "
                       f"mode at the {preset.f_max_mhz:g} MHz top clock)")
        published = True
    t1_ref = anchor * amdahl(p_ref, n)
    e_ref = preset.dyn_w_max * amdahl(p_ref, n) / n * anchor
    calibration = {
        "latency_anchor": (f"w1.0-r224-fp32 = {anchor:.3f} ms: {anchor_rule}. Its single-thread equivalent t1_ref = "
                           f"{anchor:.3f} x S(p_ref) = {anchor:.3f} x {amdahl(p_ref, n):.4f} = {t1_ref:.3f} ms is what "
                           f"the other variants scale from"),
        "parallel_frac": (f"Amdahl over {n} cores, S = 1/((1-p)+p/{n}), so p = (1 - 1/S)/(1 - 1/{n}) with S = t1/t4 "
                          f"from [ncnn] {section}: MobileNetV2 {t1:g}/{t4:g} ms -> p_ref = {p_ref:.4f}. Smaller models "
                          f"parallelise worse (less work per layer to split): p = p_ref + b ln(MACs/{REF_MACS:g}), "
                          f"clamped to [{P_CLAMP[0]:g}, {P_CLAMP[1]:g}], with b = {slope:.4f} the least-squares slope of p "
                          f"against ln(MACs) over the same section: " + "; ".join(pts)
                          + (". The Pi 4 ShuffleNetV2 point runs against the trend; the fit keeps it"
                             if name == "rpi4" else "")),
        "compute_bound_frac": (f"1 - m, m = the share of latency that follows the memory clock rather than the CPU "
                               f"clock, 11-48 % in [memclk]. Assumption placing the ladder inside that range: m = "
                               f"{MEM_SHARE_RANGE[0]:g} + {MEM_SHARE_SLOPE:g} ln({MEM_SHARE_FLOOR_MACS:g}/MACs) (the "
                               f"{MEM_SHARE_FLOOR_MACS:g}-MMAC fp32 1.4-224 at the 11 % floor; smaller nets move less "
                               f"work per byte); int8 multiplies m by the int8 speed-up {INT8_SPEEDUP:.3f} (it shortens "
                               f"the compute part only); clamped to [{MEM_SHARE_RANGE[0]:g}, {MEM_SHARE_RANGE[1]:g}]. "
                               f"No per-variant measurement is published"),
        "energy": (f"dynamic energy above idle = dyn_w_max x S/{n} x latency: on average S of the {n} cores are busy "
                   f"while an inference runs, drawing that share of the all-core dynamic power dyn_w_max = "
                   f"{preset.dyn_w_max:g} W (envs/devices/{name}.yaml, {preset.sources['dyn_w_max']})"
                   + (f". Cross-check [deepen]: {DEEPEN_V2_CPU_MJ[0]:g}-{DEEPEN_V2_CPU_MJ[1]:g} mJ per MobileNetV2 "
                      f"variant on a phone CPU, {DEEPEN_V2_CPU_MJ[0] / e_ref:.1f}-{DEEPEN_V2_CPU_MJ[1] / e_ref:.1f}x the "
                      f"{e_ref:.2f} mJ derived here for w1.0-r224-fp32. Not resolved: DeepEn2023 measured TFLite runs "
                      f"(several times ncnn's latency) and a power figure that may include more than the CPU's "
                      f"dynamic part; the simulator adds idle power separately, so the values here are kept"
                      if name == "pixel4" else "")),
        "peak_mem": (f"weights (params x bytes) + activations (the largest pair of live feature maps, with a residual "
                     f"input kept alive where the block has one, from the [mobilenetv2] architecture at that width and "
                     f"resolution) + {RUNTIME_OVERHEAD_MIB:g} MiB runtime overhead (assumption: inference runtime "
                     f"library, thread pool, scratch and packing buffers). fp32 4 B, int8 1 B per value"),
    }
    return DeviceFit(name=name, preset=preset, p_ref=p_ref, slope=slope, t4_anchor=anchor, t1_ref=t1_ref,
                     anchor_published=published, calibration=calibration)


# =========================================================================== the ladder

# (width, resolution, operators): the same elastic model on every device
LADDER: tuple[tuple[float, int, tuple[str, ...]], ...] = (
    (1.4, 224, ("fp32",)),
    (1.4, 224, ("int8",)),
    (1.4, 224, ("fp32", "early-exit")),
    (1.0, 224, ("fp32",)),
    (1.0, 224, ("int8",)),
    (1.0, 224, ("fp32", "prune")),
    (1.0, 224, ("int8", "prune")),
    (1.0, 224, ("fp32", "lowrank")),
    (1.0, 224, ("fp32", "early-exit")),
    (1.0, 192, ("fp32",)),
    (1.0, 160, ("fp32",)),
    (1.0, 160, ("int8",)),
    (0.75, 160, ("fp32",)),
    (1.0, 128, ("fp32",)),
    (0.5, 224, ("fp32",)),
    (1.0, 96, ("fp32",)),
    (0.5, 128, ("fp32",)),
    (0.5, 128, ("int8",)),
    (0.35, 96, ("fp32",)),
)


def variant_id(width: float, res: int, ops: Sequence[str]) -> str:
    return f"w{width}-r{res}-" + "-".join(ops)


@dataclass(frozen=True)
class Shape:
    """Device-independent description of one variant: cost, size, accuracy and their rules."""
    ops: tuple[str, ...]
    int8: bool
    macs: float                # mean MACs per inference (M)
    macs_rule: str
    t1_factor: float           # single-thread latency relative to the fp32 1.0-224 network
    t1_rule: str
    params_m: float
    params_rule: str
    act_values: float
    act_rule: str
    accuracy: float
    acc_prov: dict[str, str]


def shape(width: float, res: int, ops: tuple[str, ...]) -> Shape:
    macs, params_pub, top1, _top5, p1_ms = SLIM_V2[(width, res)]
    arch = mobilenet_v2(width, res)
    if abs(arch.macs_m - macs) > 0.1 * macs or abs(arch.params_m - params_pub) > 0.05 * params_pub:
        raise AssertionError(f"architecture walk disagrees with the slim table at {width}-{res}")
    int8 = "int8" in ops
    rung = f"{width}-{res}"
    ref_ms = SLIM_V2[REF_RUNG][4]
    t1_factor = p1_ms / ref_ms
    t1_rule = f"x {p1_ms:g}/{ref_ms:g} ([slim] Pixel 1 single-core latency {rung} / 1.0-224)"
    macs_eff, macs_rule = float(macs), f"{macs:g} MMACs [slim]"
    params, params_rule = params_pub, f"{params_pub:g} M params [slim]"
    act, act_rule = float(arch.peak_act), f"{arch.peak_act / 1e6:.4g} M values ({arch.peak_act_where})"
    acc_pub: str | None = f"{SOURCES['slim']} -- mobilenet_v2_{width}_{res}: top-1 {top1:g} %"
    acc_terms = [f"{top1:g} % ([slim] {rung})"]
    acc = top1

    if "prune" in ops:
        speed = (1.0 / AMC_V2_FLOPS) ** LAT_MAC_EXP
        keep = math.sqrt(AMC_V2_FLOPS)
        macs_eff *= AMC_V2_FLOPS
        t1_factor /= speed
        t1_rule += (f" / {speed:.3f} ([amc] channel pruning to {AMC_V2_FLOPS:.0%} FLOPs; latency ~ MACs^"
                    f"{LAT_MAC_EXP:.3f}, k = ln {AMC_V1_SPEEDUP:g}/ln 2 from AMC MobileNetV1's measured "
                    f"{AMC_V1_SPEEDUP:g}x at 50 % FLOPs)")
        macs_rule += f" x {AMC_V2_FLOPS:g} (pruned)"
        params *= AMC_V2_FLOPS
        params_rule += (f" x {AMC_V2_FLOPS:g} (uniform channel keep ratio sqrt({AMC_V2_FLOPS:g}) = {keep:.3f}; params "
                        f"and MACs go with its square; an approximation, AMC prunes layers unevenly)")
        act *= keep
        act_rule += f" x {keep:.3f} (channel keep ratio)"
        if (width, res) == REF_RUNG:
            acc = AMC_V2_TOP1
            acc_pub = f"{SOURCES['amc']} -- MobileNetV2-70%FLOPs top-1 {AMC_V2_TOP1:g} %"
            acc_terms = [f"{AMC_V2_TOP1:g} % ([amc] MobileNetV2-70%FLOPs)"]
        else:
            loss = SLIM_V2[REF_RUNG][2] - AMC_V2_TOP1
            acc -= loss
            acc_pub = None
            acc_terms.append(f"- {loss:.3f} pt ([amc] MobileNetV2 at 70 % FLOPs, {SLIM_V2[REF_RUNG][2]:g} -> "
                             f"{AMC_V2_TOP1:g} %, carried over to this rung)")
    if "lowrank" in ops:
        speed = LOWRANK_MAC_REDUCTION ** LAT_MAC_EXP
        macs_eff /= LOWRANK_MAC_REDUCTION
        t1_factor /= speed
        t1_rule += (f" / {speed:.3f} (assumption: rank-1/2 factorisation of the pointwise convs of the widest stages, "
                    f"{LOWRANK_MAC_REDUCTION:g}x fewer MACs; latency ~ MACs^{LAT_MAC_EXP:.3f} as for pruning)")
        macs_rule += f" / {LOWRANK_MAC_REDUCTION:g} (low-rank, assumption)"
        params /= LOWRANK_MAC_REDUCTION
        params_rule += f" / {LOWRANK_MAC_REDUCTION:g} (assumption: parameters fall with the MACs)"
        act_rule += " (the rank-r intermediate maps are smaller than the maps they feed)"
        acc -= LOWRANK_TOP1_LOSS_PT
        acc_pub = None
        acc_terms.append(f"- {LOWRANK_TOP1_LOSS_PT:g} pt (assumption: nothing published for this operator here; "
                         f"midpoint of a 1-2 pt loss for rank-1/2 pointwise factorisation after fine-tuning)")
    if "early-exit" in ops:
        head_m = {b: arch.block_channels[b] * N_CLASSES / 1e6 for b in EXIT_BLOCKS}   # pool + FC: MACs = params
        b1, b2 = EXIT_BLOCKS
        cum1, cum2 = arch.block_macs_m[b1], arch.block_macs_m[b2]
        cost = (cum1 + head_m[b1], cum2 + head_m[b1] + head_m[b2], arch.macs_m + head_m[b1] + head_m[b2])
        mean_frac = sum(m * c for m, c in zip(EXIT_MIX, cost)) / arch.macs_m
        speed = (1.0 / mean_frac) ** LAT_MAC_EXP
        macs_eff *= mean_frac
        t1_factor /= speed
        t1_rule += (f" / {speed:.3f} (exits after blocks {b1} and {b2}, at {cum1 / arch.macs_m:.1%} and "
                    f"{cum2 / arch.macs_m:.1%} of the MACs, pool+FC heads; assumed exit mix "
                    f"{EXIT_MIX[0]:g}/{EXIT_MIX[1]:g}/{EXIT_MIX[2]:g} -> mean cost {mean_frac:.3f} of the full net; "
                    f"latency ~ MACs^{LAT_MAC_EXP:.3f}; inside the 'up to {EXIT_MAX_SPEEDUP:g}x' of [exit])")
        macs_rule += f" x {mean_frac:.3f} (mean over the exit mix)"
        extra = sum(head_m.values())
        params += extra
        params_rule += (f" + {extra:.3f} M (exit heads FC {arch.block_channels[b1]}x{N_CLASSES} and "
                        f"{arch.block_channels[b2]}x{N_CLASSES})")
        loss = EXIT_TOP5_LOSS_PT * TOP1_TOP5_RATIO
        acc -= loss
        acc_pub = None
        acc_terms.append(f"- {loss:.3f} pt (assumption: the < {EXIT_TOP5_LOSS_PT:g} % top-5 loss of [exit] taken at "
                         f"its bound and scaled to top-1 by {TOP1_TOP5_RATIO:.3f}, the median top-1/top-5 loss ratio "
                         f"between adjacent resolution rungs of the [slim] table: top-1 loses more than top-5)")
    if int8:
        t1_factor /= INT8_SPEEDUP
        t1_rule += (f" / {INT8_SPEEDUP:.3f} ([tflite] int8 speed-up, MobileNetV2 {TFLITE_V2_FP32_MS:g} -> "
                    f"{TFLITE_V2_INT8_MS:g} ms on a Pixel 3)")
        if (width, res) == REF_RUNG and ops == ("int8",):
            acc = TFLITE_V2_INT8_TOP1
            acc_pub = (f"{SOURCES['tflite']} -- Mobilenet_V2_1.0_224_quant top-1 {TFLITE_V2_INT8_TOP1:g} % "
                       f"(cross-check, per-channel PTQ: {SOURCES['torchvision']})")
        else:
            loss = INT8_LOSS_REF_PT * (REF_MACS / macs_eff) ** INT8_LOSS_EXP
            acc -= loss
            acc_pub = None
            acc_terms.append(f"- {loss:.3f} pt (int8: {INT8_LOSS_REF_PT:g} pt at {REF_MACS:g} MMACs, [tflite] "
                             f"MobileNetV2 {TFLITE_V2_FP32_TOP1:g} -> {TFLITE_V2_INT8_TOP1:g} %, x ({REF_MACS:g}/"
                             f"{macs_eff:.4g})^{INT8_LOSS_EXP:.3f}: smaller nets lose more, exponent from the [slim] "
                             f"MobileNetV3 8-bit losses, Large -1.3 pt at 217 MMACs vs Small -2.6 pt at 66; "
                             f"[torchvision] per-channel PTQ loses less)")
    acc = round(acc / 100.0, 5)
    if acc_pub is not None:
        acc_prov = {"kind": "published", "source": acc_pub}
    else:
        acc_prov = {"kind": "derived", "rule": "top-1 = " + " ".join(acc_terms) + f" = {acc * 100:.3f} %"}
    return Shape(ops, int8, macs_eff, macs_rule, t1_factor, t1_rule, params, params_rule, act, act_rule, acc,
                 acc_prov)


def derive_variant(width: float, res: int, ops: tuple[str, ...], dev: DeviceFit) -> Variant:
    s = shape(width, res, ops)
    n = dev.preset.cores
    bpp = 1 if s.int8 else 4
    prec = "int8" if s.int8 else "fp32"

    p_raw = dev.p_ref + dev.slope * math.log(s.macs / REF_MACS)
    p = min(max(p_raw, P_CLAMP[0]), P_CLAMP[1])
    speedup = amdahl(p, n)
    p_rule = (f"p = p_ref {dev.p_ref:.4f} + {dev.slope:.4f} ln(MACs/{REF_MACS:g}) (calibration.parallel_frac), MACs = "
              f"{s.macs_rule} = {s.macs:.4g} -> p = {p_raw:.4f}" + (f", clamped to {p:.4f}" if p != p_raw else "")
              + f"; S({n}) = {speedup:.4f}")

    t1 = dev.t1_ref * s.t1_factor
    lat = t1 / speedup
    if (width, res, ops) == (*REF_RUNG, ("fp32",)) and dev.anchor_published:
        lat_prov = {"kind": "published", "source": f"{SOURCES['ncnn']} -- {NCNN[dev.name][0]}: MobileNetV2 "
                                                   f"{NCNN[dev.name][1]['MobileNetV2'][0]:g} ms with {n} threads"}
    else:
        rule = (f"t1 = t1_ref {dev.t1_ref:.3f} ms (calibration.latency_anchor) {s.t1_rule} = {t1:.3f} ms; latency = "
                f"t1 / S({n}) = {t1:.3f} / {speedup:.4f} = {lat:.3f} ms")
        if dev.name == "rpi4" and ops == ("int8",) and (width, res) == REF_RUNG:
            rule += (f" (cross-check: [pytorch-pi4] reports {26.4:g} ms for int8 MobileNetV2 in PyTorch; the ncnn Pi 4 "
                     f"figures are slow, see shared/CALIBRATION.md)")
        lat_prov = {"kind": "derived", "rule": rule}

    m = mem_share(s.macs, s.int8)
    cbf = 1.0 - m
    cbf_rule = (f"1 - m (calibration.compute_bound_frac), m = {MEM_SHARE_RANGE[0]:g} + {MEM_SHARE_SLOPE:g} "
                f"ln({MEM_SHARE_FLOOR_MACS:g}/{s.macs:.4g}) = {mem_share(s.macs, False):.4f}"
                + (f", x {INT8_SPEEDUP:.3f} for int8 = {m:.4f}" if s.int8 else "")
                + f" -> {cbf:.4f}")

    w_mib = s.params_m * 1e6 * bpp / MIB
    a_mib = s.act_values * bpp / MIB
    peak = w_mib + a_mib + RUNTIME_OVERHEAD_MIB
    peak_rule = (f"weights {s.params_rule} = {s.params_m:.4g} M x {bpp} B = {w_mib:.3f} MiB + activations "
                 f"{s.act_rule} x {bpp} B = {a_mib:.3f} MiB + runtime overhead {RUNTIME_OVERHEAD_MIB:g} MiB "
                 f"(assumption) = {peak:.2f} MiB (calibration.peak_mem)")
    size_rule = f"{s.params_rule} = {s.params_m:.4g} M params x {bpp} B ({prec}) = {w_mib:.3f} MiB"

    energy = dev.preset.dyn_w_max * speedup / n * lat
    e_rule = (f"dyn_w_max x S/{n} x latency (calibration.energy) = {dev.preset.dyn_w_max:g} W x {speedup:.4f}/{n} x "
              f"{lat:.3f} ms = {energy:.3f} mJ")

    return Variant(
        id=variant_id(width, res, ops),
        branch={"family": "mobilenetv2", "width": width, "resolution": res,
                "exit": "early" if "early-exit" in ops else "final"},
        operators=ops,
        accuracy=s.accuracy,
        latency_ms=round(lat, 3),
        compute_bound_frac=round(cbf, 4),
        parallel_frac=round(p, 4),
        peak_mem_mb=round(peak, 2),
        size_mb=round(w_mib, 3),
        energy_mj=round(energy, 3),
        provenance={
            "accuracy": s.acc_prov,
            "latency_ms": lat_prov,
            "compute_bound_frac": {"kind": "derived", "rule": cbf_rule},
            "parallel_frac": {"kind": "derived", "rule": p_rule},
            "peak_mem_mb": {"kind": "derived", "rule": peak_rule},
            "size_mb": {"kind": "derived", "rule": size_rule},
            "energy_mj": {"kind": "derived", "rule": e_rule},
        },
    )


_REFERENCE = {
    "rpi4": "all 4 Cortex-A72 cores free at arm_freq {f:g} MHz, the top of the preset's DVFS ladder",
    "jetson-nano": "all 4 Cortex-A57 cores free at {f:g} MHz (nvpmodel 10 W mode)",
    "pixel4": "the 4 big cores free (1 prime at 2841.6 MHz + 3 gold at {f:g} MHz, the top of the preset's ladder), "
              "little cores unused",
}


def build_catalog(name: str) -> Catalog:
    dev = fit_device(name)
    reference = (f"latency_ms: per-image time at batch 1 with {dev.preset.cores} inference threads on "
                 + _REFERENCE[name].format(f=dev.preset.f_max_mhz)
                 + "; energy_mj: dynamic energy above idle per inference at that point; peak_mem_mb and size_mb "
                   "in MiB (2^20 bytes)")
    return Catalog(
        name=f"{name}-mobilenetv2",
        device=name,
        task="ImageNet-1k top-1 (fraction)",
        reference=reference,
        variants=[derive_variant(w, r, ops, dev) for w, r, ops in LADDER],
        runtime_overhead_mb=RUNTIME_OVERHEAD_MIB,
        runtime_overhead_origin=("derived: assumption: the inference runtime library, thread pool, scratch and "
                                 "packing buffers; included in every peak_mem_mb and held once by the process"),
        threads=dev.preset.cores,
        threads_origin=(f"derived: one inference thread per core, as the latency anchor was measured ([ncnn] "
                        f"benchncnn with {dev.preset.cores} threads); the simulator shares the cores among these and "
                        f"the background's runnable threads"),
        extra={
            "derivation": ("Derived from published figures, not measured: python scripts/derive_catalogs.py rewrites "
                           "this file byte-identically. Each variant's provenance gives its rule with the numbers; "
                           "[key] cites sources[key], calibration.* the device-level fits below. Operators: fp32 / "
                           "int8 name the precision; prune, lowrank and early-exit are applied on top."),
            "sources": dict(SOURCES),
            "calibration": dev.calibration,
        },
    )


def pareto_ids(cat: Catalog, costs: Sequence[str] = ("latency_ms",)) -> list[str]:
    """Variants that no other variant matches or beats on accuracy and on every cost (lower is better)."""
    out = []
    for v in cat.variants:
        dominated = any(
            o is not v and o.accuracy >= v.accuracy and all(getattr(o, c) <= getattr(v, c) for c in costs)
            and (o.accuracy > v.accuracy or any(getattr(o, c) < getattr(v, c) for c in costs))
            for o in cat.variants)
        if not dominated:
            out.append(v.id)
    return out


def front_gap_pt(cat: Catalog, v: Variant) -> float:
    """Top-1 points a variant gives away against the best variant at most as slow (0 on the front)."""
    best = max(o.accuracy for o in cat.variants if o.latency_ms <= v.latency_ms)
    return 100.0 * (best - v.accuracy)


def main(argv: Sequence[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description="Derive envs/catalogs/{rpi4,jetson-nano,pixel4}.json from published figures.")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="where to write the catalogs (default: the shipped envs/catalogs/)")
    ap.add_argument("-q", "--quiet", action="store_true", help="do not print the tables")
    args = ap.parse_args(argv)
    out_dir = args.out_dir if args.out_dir is not None else paths.envs_dir() / "catalogs"
    written = []
    for name in DEVICES:
        cat = build_catalog(name)
        written.append(cat.save(out_dir / f"{name}.json"))
        if args.quiet:
            continue
        front = set(pareto_ids(cat))
        print(f"{cat.name}: {len(cat)} variants, {len(front)} on the accuracy-latency front (*) -> {written[-1]}")
        print(f"  {'id':27s} {'acc':>7s} {'lat_ms':>8s} {'cbf':>6s} {'p':>6s} {'mem_mb':>7s} {'size_mb':>8s} "
              f"{'E_mj':>8s} {'gap_pt':>6s}")
        for v in cat.variants:
            print(f"{'*' if v.id in front else ' '} {v.id:27s} {v.accuracy:7.4f} {v.latency_ms:8.2f} "
                  f"{v.compute_bound_frac:6.3f} {v.parallel_frac:6.3f} {v.peak_mem_mb:7.2f} {v.size_mb:8.3f} "
                  f"{v.energy_mj:8.2f} {front_gap_pt(cat, v):6.2f}")
    return written


if __name__ == "__main__":
    main()
    sys.exit(0)
