"""Regenerate the benchmark table of docs/BENCHMARKS.md and the README's "what to expect" from bench output.

    python scripts/benchmark_tables.py [--runs runs] [--check]

Reads ``runs/<env-name>/bench/results.csv`` of every shipped environment (what
``scripts/ship_controllers.py`` writes with ``adascale-rl bench --env ... --seeds 5``) and
rewrites the text between the markers ``<!-- bench:table -->`` ... ``<!-- /bench:table -->`` in
docs/BENCHMARKS.md and ``<!-- bench:expect -->`` ... ``<!-- /bench:expect -->`` in README.md, so
no number there is typed by hand. ``--check`` only says whether the files are up to date
(exit 1 if not).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adascale_rl.environment.registration import registered_specs  # noqa: E402


def load(runs: Path) -> dict[str, dict[str, dict]]:
    out = {}
    for spec in registered_specs():
        f = runs / spec.name / "bench" / "results.csv"
        if not f.exists():
            raise SystemExit(f"{f} is missing: run python scripts/ship_controllers.py --env {spec.name} first")
        with open(f) as fh:
            out[spec.name] = {r["policy"]: r for r in csv.DictReader(fh) if r["env"] == spec.id}
    return out


def table(res: dict[str, dict[str, dict]]) -> str:
    envs = list(res)
    policies = sorted({p for r in res.values() for p in r},
                      key=lambda p: -sum(float(res[e][p]["return_vs_oracle"]) for e in envs if p in res[e]))
    head = "| policy | kind | " + " | ".join(envs) + " | mean vs oracle |"
    lines = [head, "|" + "---|" * (len(envs) + 3)]
    for p in policies:
        cells, ratios, kind = [], [], ""
        for e in envs:
            r = res[e].get(p)
            if r is None:
                cells.append("-")
                continue
            kind = r["kind"]
            ratios.append(float(r["return_vs_oracle"]))
            cells.append(f"{float(r['mean_return']):.2f} ± {float(r['ci95_return']):.2f} ({float(r['return_vs_oracle']):.3f})")
        mean = sum(ratios) / len(ratios) if len(ratios) == len(envs) else float("nan")
        lines.append(f"| {p} | {kind} | " + " | ".join(cells) + f" | {mean:.4f} |")
    return "\n".join(lines)


def _span(xs: list[float], signed: bool = False) -> str:
    """A range of fractions as percentages: "0.3-1.8 %", or signed "-0.1 to +0.2 %"."""
    lo, hi = 100 * min(xs), 100 * max(xs)
    if signed:
        return f"{lo:+.1f} to {hi:+.1f} %"
    return f"{lo:.1f} %" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f} %"


def expect(res: dict[str, dict[str, dict]]) -> str:
    def ratio(e, a, b):
        return float(res[e][a]["mean_return"]) / float(res[e][b]["mean_return"])

    def overlaps(e, a, b):
        ra, rb = res[e][a], res[e][b]
        gap = abs(float(ra["mean_return"]) - float(rb["mean_return"]))
        return gap <= float(ra["ci95_return"]) + float(rb["ci95_return"])

    envs = list(res)
    planner_gap = [1 - float(res[e]["planner"]["return_vs_oracle"]) for e in envs]
    greedy_vs_planner = [1 - ratio(e, "greedy", "planner") for e in envs]
    parts = [f"the reward-aware planner comes within {_span(planner_gap)} of the clairvoyant oracle"]
    for name, what in (("ppo", "the shipped `ppo` controllers (the planner as a prior plus a PPO residual)"),
                       ("ppo-noprior", "PPO alone on the same budget (`ppo-noprior`)")):
        have = [e for e in envs if name in res[e]]
        if have:
            rel = [ratio(e, name, "planner") - 1 for e in have]
            tied = sum(overlaps(e, name, "planner") for e in have)
            parts.append(f"{what} {_span(rel, signed=True)} against the planner (95 % CIs overlapping on "
                         f"{tied} of {len(have)} environments)")
    parts.append(f"AdaScale's plain profiler-guided greedy loses {_span(greedy_vs_planner)} against the planner")
    return ("What to expect (test splits, 5 evaluation seeds; every figure from `adascale-rl bench`, the table, "
            "commands and machine in [docs/BENCHMARKS.md](docs/BENCHMARKS.md)): " + "; ".join(parts) + ".")


def replace(path: Path, tag: str, text: str, check: bool) -> bool:
    s = path.read_text()
    pat = re.compile(rf"(<!-- {tag} -->\n)(?:.*?\n)?(<!-- /{tag} -->)", re.S)
    if not pat.search(s):
        raise SystemExit(f"{path} has no <!-- {tag} --> ... <!-- /{tag} --> markers")
    new = pat.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(2), s)
    if new != s and not check:
        path.write_text(new)
    return new == s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    res = load(Path(args.runs))
    ok = replace(ROOT / "docs" / "BENCHMARKS.md", "bench:table", table(res), args.check)
    ok &= replace(ROOT / "README.md", "bench:expect", expect(res), args.check)
    if args.check:
        print("up to date" if ok else "out of date: run python scripts/benchmark_tables.py")
        return 0 if ok else 1
    print("wrote the table into docs/BENCHMARKS.md and what to expect into README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
