"""PNG plots of an experiment (matplotlib, Agg backend: no display needed).

- accuracy_by_domain.png: grouped bars, one group per domain, one bar per method, 95% CI error bars
- accuracy_by_dataset.png: the same per dataset
- source_target_gap.png: source vs target accuracy per method, and the paired method differences with 95% CIs
- training_curves.png: lm_loss, domain_loss, lambda and domain_acc of every trained run
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from prada.io import read_jsonl_tolerant  # noqa: E402
from prada.run_dir import TRAIN_LOG

CURVES = ("lm_loss", "domain_loss", "lambda", "domain_acc")


def _err(cells: list[dict | None]) -> tuple[list[float], list[list[float]]]:
    """Heights and asymmetric error bars (2, N) from {"accuracy", "ci"} cells; missing cells are 0 with no bar."""
    heights, lo, hi = [], [], []
    for c in cells:
        acc = c.get("accuracy") if c else None
        ci = c.get("ci") if c else None
        heights.append(acc or 0.0)
        lo.append(max(0.0, acc - ci[0]) if acc is not None and ci else 0.0)
        hi.append(max(0.0, ci[1] - acc) if acc is not None and ci else 0.0)
    return heights, [lo, hi]


def _grouped_bars(ax, groups: list[str], series: dict[str, list[dict | None]], ylabel: str = "accuracy (%)") -> None:
    n = max(1, len(series))
    width = 0.8 / n
    for i, (label, cells) in enumerate(series.items()):
        heights, err = _err(cells)
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, heights, width, yerr=err, capsize=3, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)


def _by_fold(results: dict) -> dict[str, list[dict]]:
    folds: dict[str, list[dict]] = {}
    for s in results["summary"]:
        folds.setdefault(s["fold"], []).append(s)
    return folds


def plot_accuracy(results: dict, path: Path, level: str) -> Path:
    """Grouped bars per domain (level='domains') or dataset (level='datasets'), one panel per fold."""
    folds = _by_fold(results)
    fig, axes = plt.subplots(1, len(folds), figsize=(max(6.0, 1.2 * 6 * len(folds)), 4.2), squeeze=False)
    for ax, (fold, rows) in zip(axes[0], folds.items()):
        keys = list(rows[0][level])
        labels = [f"{k}\n(target)" if rows[0][level][k].get("role") == "target" else k for k in keys]
        _grouped_bars(ax, labels, {s["method"]: [s[level].get(k) for k in keys] for s in rows})
        ax.set_title(f"fold: {fold}")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{results['name']}: accuracy by {level[:-1]} (95% bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_source_target_gap(results: dict, path: Path) -> Path | None:
    """Left: source vs target accuracy per method and fold; right: paired differences with 95% CIs. None without targets."""
    rows = [s for s in results["summary"] if s.get("target_accuracy")]
    if not rows:
        return None
    labels = [f"{s['method']}\n{s['fold']}" if len(results["folds"]) > 1 else s["method"] for s in rows]
    pairs = [p for p in results.get("paired") or [] if p.get("ci")]
    fig, axes = plt.subplots(
        1, 2 if pairs else 1, figsize=(max(8.0, 1.6 * len(rows) + 5), max(4.2, 0.35 * len(pairs) + 1.5))
    )
    left = axes[0] if pairs else axes
    _grouped_bars(
        left, labels, {"source": [s["source_accuracy"] for s in rows], "target": [s["target_accuracy"] for s in rows]}
    )
    left.legend(fontsize=8)
    left.set_title("source vs target accuracy (different datasets)")
    if pairs:
        right = axes[1]
        colour = {"source": "tab:blue", "target": "tab:orange"}
        for y, p in enumerate(pairs):
            lo, hi = p["ci"]
            right.errorbar(
                p["diff"], y, xerr=[[p["diff"] - lo], [hi - p["diff"]]], fmt="o", color=colour[p["role"]], capsize=3
            )
        right.axvline(0, color="black", lw=0.8)
        right.set_yticks(range(len(pairs)))
        right.set_yticklabels([f"{p['a']} − {p['b']} ({p['role']}, {p['fold']})" for p in pairs], fontsize=7)
        right.invert_yaxis()
        right.set_xlabel("accuracy difference (points), paired 95% CI")
        right.set_title("paired differences (same items and seeds)")
        right.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{results['name']}: source vs target")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curves(run_dirs: dict[str, Path], path: Path) -> Path | None:
    """2x2 panels (lm_loss, domain_loss, lambda, domain_acc) vs step, one line per run with a train_log.jsonl."""
    logs = {name: read_jsonl_tolerant(d / TRAIN_LOG) for name, d in run_dirs.items()}
    logs = {k: v for k, v in logs.items() if v}
    if not logs:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    colour = {name: f"C{i}" for i, name in enumerate(logs)}  # one colour per run in every panel
    for ax, key in zip(axes.flat, CURVES):
        for name, rows in logs.items():
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), label=name, lw=1.2, color=colour[name])
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(results: dict, root: Path, run_dirs: dict[str, Path]) -> list[Path]:
    """Every plot of the report into root; returns the files written."""
    root = Path(root)
    made = [
        plot_accuracy(results, root / "accuracy_by_domain.png", "domains"),
        plot_accuracy(results, root / "accuracy_by_dataset.png", "datasets"),
        plot_source_target_gap(results, root / "source_target_gap.png"),
        plot_training_curves(run_dirs, root / "training_curves.png"),
    ]
    return [p for p in made if p is not None]
