"""Reports: results.csv, a Markdown table and PNG plots."""

from __future__ import annotations

import csv
import math
import platform
from pathlib import Path
from typing import Sequence

import numpy as np

COLUMNS = ("env", "policy", "kind", "mean_return", "ci95_return", "effective_accuracy", "miss_rate",
           "mean_latency_ms", "energy_j", "oom_kills", "switches", "return_vs_oracle", "latency_vs_largest",
           "energy_vs_largest", "accuracy_vs_largest", "episodes", "params")


def machine() -> str:
    import os

    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, Python {platform.python_version()}".replace("  ", " ")


def write_csv(rows: Sequence[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _ratio(x: float) -> str:
    """A ratio cell: ``1.23x``, or ``n/a`` (no reference policy in the run)."""
    s = _fmt(x, 2)
    return s if s == "n/a" else f"{s}x"


def markdown(rows: Sequence[dict], *, command: str, seeds: Sequence[int], notes: Sequence[str] = ()) -> str:
    out = []
    for env in dict.fromkeys(r["env"] for r in rows):
        sub = [r for r in rows if r["env"] == env]
        out.append(f"### {env}\n")
        out.append("| policy | kind | return (mean ± 95% CI) | vs oracle | eff. accuracy | miss rate | latency ms | "
                   "latency vs largest | energy J | energy vs largest | OOM | switches |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(sub, key=lambda r: -r["mean_return"]):
            out.append(f"| {r['policy']} | {r['kind']} | {r['mean_return']:.2f} ± {_fmt(r['ci95_return'], 2)} | "
                       f"{_fmt(r['return_vs_oracle'])} | {r['effective_accuracy']:.3f} | {r['miss_rate']:.3f} | "
                       f"{r['mean_latency_ms']:.1f} | {_ratio(r['latency_vs_largest'])} | {r['energy_j']:.1f} | "
                       f"{_ratio(r['energy_vs_largest'])} | {r['oom_kills']:.2f} | {r['switches']:.1f} |")
        out.append("")
    head = [
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Evaluation seeds: {list(seeds)}; every policy meets the same traces and noise (paired). "
        "Return is the episode return averaged over test episodes; the 95% CI is over per-seed means (t-distribution). "
        "'latency vs largest' and 'energy vs largest' are static-largest's value divided by the policy's "
        "(>1: faster / less energy), as the AdaScale paper reports them; heuristic margins tuned on the train split.",
        "",
    ]
    tail = [f"- {n}" for n in notes]
    return "\n".join(head + out + tail) + "\n"


def plot_returns(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r["env"] for r in rows))
    fig, axes = plt.subplots(len(envs), 1, figsize=(9, 3.2 * len(envs)), squeeze=False)
    colors = {"heuristic": "tab:blue", "reference": "tab:gray", "learned": "tab:red"}
    for ax, env in zip(axes[:, 0], envs):
        sub = sorted([r for r in rows if r["env"] == env], key=lambda r: r["mean_return"])
        y = np.arange(len(sub))
        ci = [0.0 if math.isnan(r["ci95_return"]) else r["ci95_return"] for r in sub]
        ax.barh(y, [r["mean_return"] for r in sub], xerr=ci, color=[colors[r["kind"]] for r in sub])
        ax.set_yticks(y, [r["policy"] for r in sub])
        ax.set_title(env)
        ax.set_xlabel("mean episode return (95% CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(env_name: str, episodes: dict, catalog_ids: Sequence[str], path: Path) -> None:
    """Context and chosen variant over one test episode, for a few policies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(episodes.values()))
    exo = first["exo"]
    t = np.arange(len(exo))
    fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(t, [e.bg_cpu_util for e in exo], label="background CPU")
    axes[0].plot(t, [min(e.mem_avail_mb / 1000.0, 2.0) for e in exo], label="available memory (GB, clipped at 2)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"{env_name}: {first['trace']}")
    axes[1].plot(t, [e.deadline_ms for e in exo], label="deadline ms")
    axes[1].plot(t, [1000.0 / e.request_rate_hz if e.request_rate_hz > 0 else np.nan for e in exo],
                 label="inter-arrival ms")
    axes[1].legend(loc="upper right", fontsize=8)
    for name, ep in episodes.items():
        recs = ep["records"]
        axes[2].plot(t[:len(recs)], [r["freq_mhz"] for r in recs], label=f"clock MHz ({name})")
        axes[3].step(t[:len(recs)], [catalog_ids.index(r["variant"]) for r in recs], where="post", label=name)
    axes[2].legend(loc="lower right", fontsize=8)
    axes[3].set_yticks(range(len(catalog_ids)), catalog_ids, fontsize=6)
    axes[3].set_ylabel("variant")
    axes[3].set_xlabel("interval")
    axes[3].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
