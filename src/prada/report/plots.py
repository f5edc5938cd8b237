"""PNG plots of an experiment (matplotlib, Agg backend: no display needed).

- accuracy_by_domain.png: grouped bars, one group per domain, one bar per method, 95% CI error bars
- accuracy_by_dataset.png: the same per dataset
- source_target_gap.png: source vs target accuracy per method, and the paired method differences with 95% CIs
- training_curves.png: lm_loss, domain_loss, lambda and domain_acc of every trained run
- heldout_domain.png: the held-out domain diagnostics over steps (`train.eval_every`): a fresh probe's
  domain accuracy, the adversary head's, and the held-out source CoT loss, one colour per method
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from prada.io import atomic_file, read_jsonl_tolerant  # noqa: E402
from prada.run_dir import TRAIN_LOG

CURVES = ("lm_loss", "domain_loss", "lambda", "domain_acc")


def save_figure(fig, path: Path) -> None:
    """The PNG appears complete or not at all (a kill mid-savefig left a 0-byte plot), and never through a link."""
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=110)


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
    save_figure(fig, path)
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
    save_figure(fig, path)
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
    save_figure(fig, path)
    plt.close(fig)
    return path


HELDOUT = (
    ("heldout_probe_acc", "held-out domain accuracy of a fresh probe (PCA-8)"),
    ("heldout_head_acc", "held-out domain accuracy of the adversary's head"),
    ("heldout_lm_loss_source", "held-out source CoT loss"),
)


def heldout_rows(rows: list[dict]) -> list[dict]:
    """The train_log rows that carry the held-out diagnostics (every `train.eval_every` steps)."""
    return [r for r in rows if "heldout_probe_majority" in r]


def plot_heldout_domain(
    run_dirs: dict[str, Path], path: Path, title: str, colour_by: dict[str, str] | None = None
) -> Path | None:
    """One panel per held-out diagnostic vs step; runs that share a `colour_by` value (a method) share a colour.

    Why a fresh probe beside the head: a head can be fooled while the features still carry the domain.
    """
    logs = {name: heldout_rows(read_jsonl_tolerant(d / TRAIN_LOG)) for name, d in run_dirs.items()}
    logs = {k: v for k, v in logs.items() if v}
    if not logs:
        return None
    groups = list(dict.fromkeys((colour_by or {}).get(name, name) for name in logs))
    fig, axes = plt.subplots(1, len(HELDOUT), figsize=(15, 4.5))
    labelled: set[str] = set()
    for name, rows in logs.items():
        group = (colour_by or {}).get(name, name)
        colour = f"C{groups.index(group) % 10}"
        for ax, (key, _) in zip(axes, HELDOUT):
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, lw=1.2, color=colour, label=None if group in labelled else group)
        labelled.add(group)
    first = next(iter(logs.values()))
    axes[0].plot(
        [r["step"] for r in first], [r["heldout_probe_majority"] for r in first], "k--", lw=0.8, label="majority rate"
    )
    axes[1].plot([r["step"] for r in first], [r["heldout_probe_majority"] for r in first], "k--", lw=0.8)
    for ax, (key, label) in zip(axes, HELDOUT):
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if key != "heldout_lm_loss_source":
            ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
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
        plot_heldout_domain(
            run_dirs,
            root / "heldout_domain.png",
            f"{results['name']}: held-out domain diagnostics over training",
            {r["run"]: r["method"] for r in results["runs"]},
        ),
    ]
    return [p for p in made if p is not None]
