"""The PNG plots of a bench: ``returns.png`` (return per policy) and ``timeline-<env>.png``
(one test episode: the context and what a few policies did with it). docs/RESULTS.md says
how to read them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

#: one colour per kind of policy (returns.png), with the legend's words
KIND_COLOURS = {"heuristic": ("tab:blue", "heuristic (deployable, tuned on train)"),
                "reference": ("tab:gray", "reference (reads the simulator)"),
                "learned": ("tab:red", "learned controller")}
#: per policy in the timeline, drawn in this order: wide and pale first, so a line drawn
#: later on top of it (the same choice) leaves it visible on both sides
POLICY_STYLES = (("tab:blue", "-", 5.0, 0.35), ("tab:orange", "--", 2.4, 0.95), ("tab:green", ":", 2.2, 1.0),
                 ("tab:purple", "-.", 1.4, 1.0), ("tab:brown", (0, (5, 1)), 1.2, 1.0))
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_returns(rows: Sequence[dict], path: Path, *, unit: str = "episode", ci_over: str = "seeds") -> None:
    """Mean return per policy (bar), its 95 % CI over seeds (or what ``ci_over`` names; error bar) and the value;
    ``unit``: what one return is a sum over (an episode, a live run)."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    envs = list(dict.fromkeys(r["env"] for r in rows))
    n_max = max(sum(1 for r in rows if r["env"] == e) for e in envs)
    fig, axes = plt.subplots(len(envs), 1, figsize=(10, 0.8 + 0.42 * n_max * len(envs) + 0.6 * len(envs)),
                             squeeze=False)
    for ax, env in zip(axes[:, 0], envs):
        sub = sorted([r for r in rows if r["env"] == env], key=lambda r: r["mean_return"])
        y = np.arange(len(sub))
        means = np.array([r["mean_return"] for r in sub])
        ci = np.array([0.0 if math.isnan(r["ci95_return"]) else r["ci95_return"] for r in sub])
        ax.barh(y, means, xerr=ci, color=[KIND_COLOURS[r["kind"]][0] for r in sub], height=0.7,
                error_kw={"elinewidth": 1.2, "capsize": 3})
        ax.set_yticks(y, [r["policy"] for r in sub], fontsize=10)
        # the bars start at 0, and a bar's label sits right of max(its end, 0): 0 in view even when every return is
        # negative (else the labels fall outside the axes and tight_layout cannot fit them)
        hi = float(max(0.0, np.max(means + ci)))
        lo = float(min(0.0, np.min(means - ci)))
        span = hi - lo if hi > lo else 1.0
        for yi, r, m, c in zip(y, sub, means, ci):
            ci_text = "" if math.isnan(r["ci95_return"]) else f" ± {c:.1f}"
            ax.text(max(m + c, 0.0) + 0.01 * span, yi, f"{m:.1f}{ci_text}", va="center", fontsize=9)
        ax.set_xlim(lo, hi + 0.2 * span)
        n = int(sub[0]["episodes"])
        ax.set_title(f"{env}: mean {unit} return per policy ({n} {unit}{'' if n == 1 else 's'} each)", fontsize=11)
        ax.set_xlabel(f"mean {unit} return (error bar and ±: 95 % confidence interval over {ci_over})")
        ax.grid(axis="x", alpha=0.3)
        kinds = [k for k in KIND_COLOURS if any(r["kind"] == k for r in sub)]
        ax.legend(handles=[Patch(color=KIND_COLOURS[k][0], label=KIND_COLOURS[k][1]) for k in kinds],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="kind", title_fontsize=9,
                  frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def plot_timeline(env_name: str, episodes: dict, catalog, path: Path, period_s: float = 1.0) -> None:
    """One test episode, for a few policies: what the context did (background CPU, available
    memory, the app's deadline and request spacing) and what each policy did with it (the CPU
    clock it ran at, the variant it had loaded)."""
    plt = _pyplot()

    first = next(iter(episodes.values()))
    exo = first["exo"]
    t = np.arange(len(exo)) * period_s
    acc = {v.id: v.accuracy for v in catalog.variants}
    peak = max(v.peak_mem_mb for v in catalog.variants)
    styles = dict(zip(episodes, POLICY_STYLES))
    used = sorted({r["variant"] for ep in episodes.values() for r in ep["records"]}, key=lambda v: (acc[v], v))
    fig, axes = plt.subplots(5, 1, figsize=(11, 12.5), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1, 1, 1.1, max(1.4, 0.28 * len(used))]})
    legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 9, "frameon": False}

    ax = axes[0]
    ax.plot(t, [e.bg_cpu_util for e in exo], color="tab:brown", lw=1.2, label="other processes")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("background CPU\n(share of all cores)")
    ax.legend(**legend)

    ax = axes[1]
    ax.plot(t, [e.mem_avail_mb for e in exo], color="tab:olive", lw=1.4, label="available memory")
    ax.axhline(peak, color="k", ls="--", lw=1, label=f"largest variant's peak ({peak:.0f} MB)")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("memory (MB)")
    ax.legend(**legend)

    ax = axes[2]
    ax.plot(t, [e.deadline_ms for e in exo], color="tab:red", lw=1.4, label="deadline")
    ax.plot(t, [1000.0 / e.request_rate_hz if e.request_rate_hz > 0 else np.nan for e in exo], color="tab:cyan",
            lw=1.4, ls="--", label="time between requests")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("the app's timing\n(ms)")
    ax.legend(**legend)

    ax = axes[3]
    for name, ep in episodes.items():
        colour, ls, lw, alpha = styles[name]
        recs = ep["records"]
        ax.plot(t[:len(recs)], [r["freq_mhz"] for r in recs], color=colour, ls=ls, lw=lw, alpha=alpha, label=name)
    cap = np.array([e.freq_cap_mhz for e in exo], dtype=float)
    # on top, thin: where a policy's clock sits below it, heat or the battery saver capped it
    if np.isfinite(cap).any():
        ax.plot(t, np.where(np.isfinite(cap), cap, np.nan), color="k", lw=0.9, ls=(0, (1, 1.5)),
                label="cap set by the context")
    ax.margins(y=0.15)
    ax.set_ylabel("CPU clock\n(MHz)")
    ax.legend(title="policy (also below)", title_fontsize=9, **legend)

    ax = axes[4]
    # identical choices would hide each other: each policy's line is shifted by a fraction of a row
    offsets = np.linspace(-0.15, 0.15, len(episodes)) if len(episodes) > 1 else [0.0]
    for (name, ep), off in zip(episodes.items(), offsets):
        colour, ls, lw, alpha = styles[name]
        recs = ep["records"]
        ax.step(t[:len(recs)], [used.index(r["variant"]) + off for r in recs], where="post", color=colour, ls=ls,
                lw=min(lw, 2.6), alpha=max(alpha, 0.6), label=name)
    ax.set_yticks(range(len(used)), [f"{v}  (acc {acc[v]:.2f})" for v in used], fontsize=9)
    ax.set_ylim(-0.6, len(used) - 0.4)
    ax.set_ylabel("variant loaded\n(those used; up = more accurate)")
    ax.grid(axis="y", alpha=0.25)
    ax.set_xlabel(f"time in the episode (s; one decision every {period_s:g} s)")

    for a in axes:
        a.grid(axis="x", alpha=0.25)
        a.tick_params(axis="both", labelsize=9)
    fig.suptitle(f"{env_name}: test trace {first['trace']}, first evaluation window, seed 0", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def plot_live_timeline(runs: dict, path: Path, title: str) -> None:
    """One live run per controller (``runs``: policy -> its ``intervals.csv`` rows, one round of ``bench --live``):
    the load the monitor measured (background run queue; busy processes the schedule started), the variant each
    controller had loaded, and its measured mean and p95 latency against the app's deadline."""
    plt = _pyplot()

    def col(rows, key):
        return np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows], dtype=float)

    names = list(runs)
    styles = {n: POLICY_STYLES[i % len(POLICY_STYLES)] for i, n in enumerate(names)}
    used = sorted({r["variant"] for rows in runs.values() for r in rows})
    fig, axes = plt.subplots(3, 1, figsize=(11, 9.5), sharex=True,
                             gridspec_kw={"height_ratios": [1, max(1.2, 0.3 * len(used)), 1.6]})
    legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 9, "frameon": False}
    first = runs[names[0]]
    t0 = col(first, "t_s")
    ax = axes[0]
    ax.step(t0, col(first, "busy"), where="post", color="k", lw=1.0, ls="--", label="busy processes started")
    for name, rows in runs.items():
        colour, ls, lw, alpha = styles[name]
        ax.plot(col(rows, "t_s"), col(rows, "bg_runnable"), color=colour, ls=ls, lw=min(lw, 1.8), alpha=alpha,
                label=f"run queue read ({name})")
    ax.set_ylabel("background load\n(runnable threads)")
    ax.set_ylim(bottom=0)
    ax.legend(**legend)
    ax = axes[1]
    offsets = np.linspace(-0.15, 0.15, len(names)) if len(names) > 1 else [0.0]
    for (name, rows), off in zip(runs.items(), offsets):
        colour, ls, lw, alpha = styles[name]
        ax.step(col(rows, "t_s"), [used.index(r["variant"]) + off for r in rows], where="post", color=colour,
                ls=ls, lw=min(lw, 2.6), alpha=max(alpha, 0.6), label=name)
    ax.set_yticks(range(len(used)), used, fontsize=9)
    ax.set_ylim(-0.6, len(used) - 0.4)
    ax.set_ylabel("variant loaded")
    ax.grid(axis="y", alpha=0.25)
    ax.legend(**legend)
    ax = axes[2]
    for name, rows in runs.items():
        colour, ls, lw, alpha = styles[name]
        t = col(rows, "t_s")
        ax.plot(t, col(rows, "latency_mean_ms"), color=colour, ls=ls, lw=min(lw, 1.8), alpha=alpha,
                label=f"{name} mean")
        ax.plot(t, col(rows, "latency_p95_ms"), color=colour, ls=":", lw=1.0, alpha=alpha, label=f"{name} p95")
    ax.step(t0, col(first, "deadline_ms"), where="post", color="tab:red", lw=1.4, label="deadline")
    ax.set_yscale("log")
    ax.set_ylabel("measured latency (ms)")
    ax.set_xlabel("time in the run (s)")
    ax.legend(**legend)
    for a in axes:
        a.grid(axis="x", alpha=0.25)
        a.tick_params(axis="both", labelsize=9)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
