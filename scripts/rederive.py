"""Re-derive every paired number of a study from its committed per-item predictions, and check results.json.

    python scripts/rederive.py results/study2/synth2real [--oracle results/study2/oracle [--gap-plot FILE.png]]

For each `paired` entry of RESULTS_DIR/results.json it reads the two methods' `predictions.jsonl` (one
line per scored item with its `correct` flag) under RESULTS_DIR, recomputes the per-seed paired
differences and their mean with plain Python (not the report's code), the paired bootstrap interval and
the seed-level t interval, and compares them with the stored ones. Exit 1 on any disagreement. With
`--oracle` (the oracle experiment's results folder) it also prints each method − oracle on the target
datasets and the share of the synthetic-to-real gap each method closes, (m − ft-cot) / (oracle − ft-cot).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean

from prada.evaluation.metrics import bootstrap_ci, seed_t_interval
from prada.report.markdown import markdown_table

TOLERANCE = 0.011  # results.json rounds to 2 decimals


def read_flags(run_dir: Path) -> dict[str, dict[str, bool]]:
    """dataset -> item id -> correct, from a run's committed predictions.jsonl."""
    flags: dict[str, dict[str, bool]] = {}
    with open(run_dir / "predictions.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if not isinstance(row.get("correct"), bool):
                raise SystemExit(f"{run_dir / 'predictions.jsonl'}: a line without a boolean `correct`: {line[:80]}")
            flags.setdefault(row["dataset"], {})[row["id"]] = row["correct"]
    return flags


def runs_by_seed(results: dict, root: Path, method: str, fold: str) -> dict[int, dict]:
    """seed -> the method's run of `fold`, flags attached; an untrained method's one run stands for every seed."""
    runs = {r["seed"]: r for r in results["runs"] if r["method"] == method and r["fold"] == fold}
    for r in runs.values():
        r["flags"] = read_flags(root / r["dir"])
    if len(runs) == 1 and not next(iter(runs.values()))["train"].get("steps"):
        only = next(iter(runs.values()))
        runs = {s: only for s in {r["seed"] for r in results["runs"] if r["fold"] == fold}}
    return runs


def role_datasets(run: dict, role: str) -> list[str]:
    targets = set(run["target_domains"])
    return [k for k, v in run["eval"]["datasets"].items() if (v["domain"] in targets) == (role == "target")]


def macro(flags: dict[str, dict[str, bool]], keys: list[str], items: dict[str, set[str]]) -> float:
    """Macro mean accuracy (percent) over `keys`, each dataset on the items in `items` only."""
    return mean(100.0 * sum(flags[k][i] for i in items[k]) / len(items[k]) for k in keys)


def paired_flags(a_runs: dict, b_runs: dict, seeds: list[int], keys: list[str]) -> tuple[list, list, list[float]]:
    """Per seed, both runs' flags on the items both scored, and the macro difference a − b on them."""
    fa, fb, per_seed = [], [], []
    for s in seeds:
        a, b = a_runs[s]["flags"], b_runs[s]["flags"]
        items = {k: set(a.get(k, {})) & set(b.get(k, {})) for k in keys}
        per_seed.append(macro(a, keys, items) - macro(b, keys, items))
        fa.append({k: {i: a[k][i] for i in items[k]} for k in keys})
        fb.append({k: {i: b[k][i] for i in items[k]} for k in keys})
    return fa, fb, per_seed


def paired(a_runs: dict, b_runs: dict, seeds: list[int], keys: list[str], n_boot: int, level: float) -> dict:
    """The per-seed differences on the items both runs of each seed scored, their mean and both intervals."""
    fa, fb, per_seed = paired_flags(a_runs, b_runs, seeds, keys)
    ci = bootstrap_ci(fa, fb, datasets=keys, n_boot=n_boot, level=level)
    by_seed = seed_t_interval(fa, fb, keys, level=level)
    return {
        "diff": mean(per_seed),
        "per_seed": per_seed,
        "ci": list(ci) if ci else None,
        "seed_ci": by_seed["ci"] if by_seed else None,
        "n_items": sum(len(fa[0][k]) for k in keys),
    }


def close(x, y) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, list):
        return len(x) == len(y) and all(close(a, b) for a, b in zip(x, y))
    return abs(x - y) <= TOLERANCE


def check(root: Path) -> tuple[list[list[str]], int]:
    results = json.loads((root / "results.json").read_text())
    n_boot, level = results["ci"]["n_boot"], results["ci"]["level"]
    rows, bad = [], 0
    for p in results["paired"]:
        a_runs = runs_by_seed(results, root, p["a"], p["fold"])
        b_runs = runs_by_seed(results, root, p["b"], p["fold"])
        keys = role_datasets(a_runs[p["seeds"][0]], p["role"])
        keys = [
            k
            for k in keys
            if all(set(a_runs[s]["flags"].get(k, {})) & set(b_runs[s]["flags"].get(k, {})) for s in p["seeds"])
        ]
        got = paired(a_runs, b_runs, p["seeds"], keys, n_boot, level)
        fields = ["diff", "ci", "n_items"] + [k for k in ("seed_ci", "per_seed") if k in p]
        ok = all(close(got[k], p[k]) for k in fields)
        bad += not ok
        ci = "[{:+.2f}, {:+.2f}]".format(*got["ci"]) if got["ci"] else "–"
        stored = "[{:+.2f}, {:+.2f}]".format(*p["ci"]) if p.get("ci") else "–"
        rows.append(
            [
                f"{p['a']} − {p['b']}",
                p["fold"],
                p["role"],
                f"{p['diff']:+.2f}",
                f"{got['diff']:+.2f}",
                stored,
                ci,
                ", ".join(f"{d:+.1f}" for d in got["per_seed"]),
                "yes" if ok else "NO",
            ]
        )
    return rows, bad


def gap_closed(root: Path, oracle_root: Path) -> list[dict]:
    """Each method − oracle on the target datasets (paired on items and seeds) and the share of the gap closed,
    pooled over seeds and per seed: (m − ft-cot) / (oracle − ft-cot)."""
    results = json.loads((root / "results.json").read_text())
    oracle = json.loads((oracle_root / "results.json").read_text())
    o_runs = {r["seed"]: {**r, "flags": read_flags(oracle_root / r["dir"])} for r in oracle["runs"]}
    fold = results["folds"][0]
    n_boot, level = oracle["ci"]["n_boot"], oracle["ci"]["level"]
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    base = runs_by_seed(results, root, "ft-cot", fold)
    out = []
    for m in methods:
        runs = runs_by_seed(results, root, m, fold)
        seeds = sorted(set(runs) & set(o_runs) & set(base))
        if not seeds:
            continue
        keys = role_datasets(runs[seeds[0]], "target")
        gap = paired_flags(o_runs, base, seeds, keys)[2]  # per seed; only the intervals of m − oracle are shown
        vs_base = paired_flags(runs, base, seeds, keys)[2]
        out.append(
            {
                "method": m,
                "seeds": seeds,
                "vs_oracle": paired(runs, o_runs, seeds, keys, n_boot, level),
                "gap": mean(gap),
                "share": mean(vs_base) / mean(gap) if abs(mean(gap)) > 1e-9 else None,
                "share_per_seed": [d / g if abs(g) > 1e-9 else None for d, g in zip(vs_base, gap)],
            }
        )
    return out


def gap_rows(gaps: list[dict]) -> list[list[str]]:
    rows = []
    for g in gaps:
        vs = g["vs_oracle"]
        ci = "[{:+.1f}, {:+.1f}]".format(*vs["ci"]) if vs["ci"] else "–"
        seed_ci = "[{:+.1f}, {:+.1f}]".format(*vs["seed_ci"]) if vs["seed_ci"] else "–"
        diffs = ", ".join(f"{d:+.1f}" for d in vs["per_seed"])
        share = f"{g['share']:+.2f}" if g["share"] is not None else "–"
        per_seed = ", ".join(f"{v:+.2f}" if v is not None else "–" for v in g["share_per_seed"])
        rows.append(
            [f"{g['method']} − oracle", f"{vs['diff']:+.1f}", ci, seed_ci, diffs, f"{g['gap']:+.1f}", share, per_seed]
            + [",".join(map(str, g["seeds"]))]
        )
    return rows


def plot_gap_closed(gaps: list[dict], path: Path) -> Path:
    """One bar per method (the pooled share of the gap closed) with each seed's share as a dot: 0 is synthetic-only
    ft-cot, 1 the oracle trained on the real rationales."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prada.report.plots import save_figure

    shown = [g for g in gaps if g["share"] is not None and g["method"] != "ft-cot"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(shown) + 2.5), 4.0))
    for x, g in enumerate(shown):
        ax.bar(x, g["share"], color="tab:blue" if g["method"].startswith("prada") else "tab:gray", alpha=0.7)
        dots = [v for v in g["share_per_seed"] if v is not None]
        ax.scatter([x] * len(dots), dots, color="black", s=14, zorder=3, label="one seed" if x == 0 else None)
    for y, name in ((0.0, "ft-cot (synthetic only)"), (1.0, "oracle (real rationales)")):
        ax.axhline(y, color="black" if y == 0 else "tab:green", lw=0.8, ls="-" if y == 0 else "--", label=name)
    ax.set_xticks(range(len(shown)), [g["method"] for g in shown], rotation=20)
    ax.set_ylabel("share of the gap closed")
    gap = f"oracle − ft-cot = {shown[0]['gap']:+.1f} points" if shown else "no method to show"
    ax.set_title(f"Share of the synthetic-to-real gap closed\n(m − ft-cot) / (oracle − ft-cot); {gap}", fontsize=9)
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(markdown_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a study's results folder (results.json, runs/*/predictions.jsonl)")
    parser.add_argument("--oracle", type=Path, help="the oracle experiment's results folder")
    parser.add_argument("--gap-plot", type=Path, metavar="PNG", help="with --oracle: plot the share of the gap closed")
    a = parser.parse_args()
    if a.gap_plot and not a.oracle:
        parser.error("--gap-plot needs --oracle (the oracle experiment's results folder)")
    rows, bad = check(a.results)
    header = [
        "a − b",
        "fold",
        "role",
        "stored diff",
        "re-derived",
        "stored 95% CI",
        "re-derived CI",
        "per seed",
        "agree",
    ]
    print(table(header, rows))
    if a.oracle:
        gaps = gap_closed(a.results, a.oracle)
        head = ["method − oracle (target)", "diff", "95% CI", "seed t interval", "per seed"]
        head += ["gap (oracle − ft-cot)", "share of gap closed"]
        print()
        print(table(head + ["share per seed", "seeds"], gap_rows(gaps)))
        if a.gap_plot:
            print(f"\nplot: {plot_gap_closed(gaps, a.gap_plot)}")
    print(
        f"\n{len(rows) - bad} of {len(rows)} paired numbers re-derived from the committed predictions agree with results.json"
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
