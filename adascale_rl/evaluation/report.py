"""Reports: results.csv and results.md (the table with every column defined). Plots: :mod:`.plots`."""

from __future__ import annotations

import csv
import math
import platform
from pathlib import Path
from typing import Mapping, Sequence

COLUMNS = ("env", "policy", "kind", "mean_return", "ci95_return", "effective_accuracy", "miss_rate",
           "mean_latency_ms", "energy_j", "oom_kills", "switches", "return_vs_oracle", "latency_vs_largest",
           "energy_vs_largest", "accuracy_vs_largest", "episodes", "params", "env_kwargs")

#: what each column means, per what and in which unit: results.md carries it, docs/RESULTS.md repeats it
DEFINITIONS = (
    ("return", "the episode's summed reward (one reward per interval, docs/ENVIRONMENT.md), mean over the "
               "evaluation episodes; ± the half-width of the 95 % confidence interval of that mean over the "
               "per-seed means (t-distribution; n/a with one seed). CSV: mean_return, ci95_return"),
    ("vs oracle", "the policy's mean return divided by the oracle's; n/a when the oracle did not run or its "
                  "mean return is not positive (the ratio would read backwards). CSV: return_vs_oracle"),
    ("eff. accuracy", "per interval, the loaded variant's top-1 accuracy times the share of the interval's "
                      "requests answered within the deadline; mean over intervals (0-1). CSV: effective_accuracy"),
    ("miss rate", "per interval, the share of requests not answered within the deadline (late, or dropped while "
                  "the app was busy or loading a variant); mean over intervals (0-1). CSV: miss_rate"),
    ("latency ms", "per interval, the mean inference latency of one request (frame) in milliseconds; mean over "
                   "intervals. CSV: mean_latency_ms"),
    ("latency vs largest", "static-largest's latency divided by the policy's: above 1 = faster; n/a when "
                           "static-largest did not run. CSV: latency_vs_largest"),
    ("energy J / episode", "energy the app's inference draws above idle power (variant loads included), summed "
                           "over an episode, in joules; mean over episodes. CSV: energy_j"),
    ("energy vs largest", "static-largest's energy divided by the policy's: above 1 = less energy. "
                          "CSV: energy_vs_largest (and accuracy_vs_largest: the policy's effective accuracy minus "
                          "static-largest's)"),
    ("OOM kills / episode", "times the app was killed for lack of memory, per episode; mean over episodes. "
                            "CSV: oom_kills"),
    ("switches / episode", "variant switches per episode; mean over episodes. CSV: switches"),
)

#: what the kinds of policy and the two references are
KINDS = (
    ("heuristic", "deployable (uses only what a device measures, and the catalog); its margins are tuned on the "
                  "environment's train split (params in results.csv; `adascale-rl evaluate --policy NAME` tunes "
                  "them the same way)"),
    ("reference", "reads the simulator, not deployable. `oracle`: clairvoyant (knows the episode's future "
                  "context and latency noise and plans over it), the ceiling. `exact-one-step`: each interval, "
                  "the best immediate reward under the simulator's exact model and noise; myopic, so it is a "
                  "reference and not a bound: it can score below the planner"),
    ("learned", "a trained controller (the shipped ones are a planner prior plus a PPO residual)"),
)


def machine() -> str:
    import os

    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, Python {platform.python_version()}".replace("  ", " ")


def vs_largest(m: dict, largest: dict | None) -> dict[str, float]:
    """A policy's ratios to static-largest from metrics with ``mean_latency_ms``, ``energy_j`` and
    ``effective_accuracy``: above 1 = faster / less energy; accuracy as a difference; NaN without it."""
    nan = float("nan")
    if largest is None:
        return {"latency_vs_largest": nan, "energy_vs_largest": nan, "accuracy_vs_largest": nan}
    return {"latency_vs_largest": largest["mean_latency_ms"] / m["mean_latency_ms"],
            "energy_vs_largest": largest["energy_j"] / m["energy_j"] if m["energy_j"] > 0 else nan,
            "accuracy_vs_largest": m["effective_accuracy"] - largest["effective_accuracy"]}


def write_csv(rows: Sequence[dict], path: Path, columns: Sequence[str] = COLUMNS) -> None:
    """``rows`` as CSV with ``columns`` (default: results.csv's), floats to 6 significant digits."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _ratio(x: float) -> str:
    """A ratio cell: ``1.23x``, or ``n/a`` (no reference policy in the run)."""
    s = _fmt(x, 2)
    return s if s == "n/a" else f"{s}x"


def markdown(rows: Sequence[dict], *, command: str, seeds: Sequence[int], notes: Sequence[str] = (),
             episodes: Mapping[str, tuple[int, float]] | None = None) -> str:
    """The results table per environment, the command, machine and seeds, every column defined,
    and the notes. ``episodes`` maps an environment id to (intervals per episode, seconds per interval)."""
    out = []
    for env in dict.fromkeys(r["env"] for r in rows):
        sub = [r for r in rows if r["env"] == env]
        out.append(f"### {env}\n")
        if episodes and env in episodes:
            steps, period = episodes[env]
            n = int(sub[0]["episodes"])
            out.append(f"An episode is one window of up to {steps} intervals of {period:g} s "
                       f"(up to {steps * period:g} s) of a trace; {n} episode{'' if n == 1 else 's'} per policy.\n")
        out.append("| policy | kind | return (mean ± 95% CI) | vs oracle | eff. accuracy | miss rate | latency ms | "
                   "latency vs largest | energy J / episode | energy vs largest | OOM kills / episode | "
                   "switches / episode |")
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
        f"Evaluation seeds: {list(seeds)}; every policy meets the same traces and noise (paired), each episode "
        "once per seed.",
        "",
    ]
    columns = ["Columns (each a mean over every evaluation episode of every seed):", ""]
    columns += [f"- **{name}**: {text}." for name, text in DEFINITIONS]
    columns += ["", "Kinds:", ""] + [f"- **{name}**: {text}." for name, text in KINDS]
    tail = ["", "Notes:", ""] + [f"- {n}" for n in notes] if notes else []
    return "\n".join(head + out + columns + tail) + "\n"


def without_definitions(md: str) -> str:
    """results.md without its Columns and Kinds sections (for the terminal, after a bench)."""
    head, sep, rest = md.partition("Columns (each a mean")
    if not sep:
        return md
    _, sep2, notes = rest.partition("Notes:")
    pointer = "(Every column is defined in results.md and docs/RESULTS.md.)\n"
    return head + pointer + (f"\nNotes:{notes}" if sep2 else "")
