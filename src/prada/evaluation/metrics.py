"""Accuracy tables (per dataset, per domain, source vs target) and intervals that stay honest at 0%, 100% and across seeds."""

from __future__ import annotations

import math
from statistics import mean


def accuracy(flags: list[bool]) -> float:
    """Percentage of True flags (0.0 for an empty list)."""
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


def summarize(per_dataset: dict[str, dict], source_domains: list[str], target_domains: list[str]) -> dict:
    """Macro averages: a domain is the mean of its datasets; source/target the mean of their datasets."""
    by_domain: dict[str, list[float]] = {}
    for info in per_dataset.values():
        by_domain.setdefault(info["domain"], []).append(info["accuracy"])

    def _mean_of(domains: list[str]) -> float | None:
        accs = [d["accuracy"] for d in per_dataset.values() if d["domain"] in domains]
        return mean(accs) if accs else None

    return {
        "domains": {d: mean(v) for d, v in sorted(by_domain.items())},
        "mean_accuracy": mean(d["accuracy"] for d in per_dataset.values()) if per_dataset else 0.0,
        "source_accuracy": _mean_of(source_domains),
        "target_accuracy": _mean_of(target_domains),
    }


def wilson_ci(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent: never [0, 0] at 0 of n, never [100, 100] at n of n."""
    from statistics import NormalDist

    if n <= 0:
        return (0.0, 100.0)
    z = NormalDist().inv_cdf((1 + level) / 2)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


# One run's correctness flags: dataset -> item id -> correct. Several seeds of one method are a list of these.
Flags = dict[str, dict[str, bool]]


def bootstrap_ci(
    runs: list[Flags],
    baseline: list[Flags] | None = None,
    datasets: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Interval of the macro-mean accuracy over `datasets` (mean over seeds), or of its paired difference.

    The design is paired: `runs[s]` and `baseline[s]` share seed s and are scored on the same items.
    Each replicate resamples seeds once (two-level bootstrap; the same seed draw for every dataset) and,
    within each dataset, items, with the SAME draw for every seed and both methods, so copies of one seed add no information and a difference
    keeps its pairing. Each dataset gets Agresti-style pseudo-items (one right and one wrong; for a
    difference one (right, wrong) and one (wrong, right) pair), so an interval never collapses at
    0 or 100% or at a zero difference. Points: percent. None when no item is shared.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    runs_b = baseline if baseline is not None else None
    if not runs or (runs_b is not None and len(runs_b) != len(runs)):
        raise ValueError("a paired interval needs one baseline run per seed")
    keys = datasets if datasets is not None else sorted(set.intersection(*(set(r) for r in runs)))
    S = len(runs)
    # one seed resample per replicate, shared by every dataset: a seed that is lucky on one dataset is
    # the same seed on the others (drawing it per dataset would average seed luck away)
    seed_w = rng.multinomial(S, np.full(S, 1 / S), n_boot) / S  # (B, S)
    per_dataset = []
    for key in keys:
        groups = runs + (runs_b or [])
        if not all(key in r for r in groups):
            continue
        ids = sorted(set.intersection(*(set(r[key]) for r in groups)))
        if not ids:
            continue
        a = np.array([[float(r[key][i]) for i in ids] for r in runs])  # (S, n)
        d = a - np.array([[float(r[key][i]) for i in ids] for r in runs_b]) if runs_b is not None else a
        pseudo = np.array([1.0, -1.0]) if runs_b is not None else np.array([1.0, 0.0])
        d = np.concatenate([d, np.broadcast_to(pseudo, (d.shape[0], 2))], axis=1)  # (S, n + 2)
        n = d.shape[1]
        item_w = rng.multinomial(n, np.full(n, 1 / n), n_boot) / n  # (B, n): the same items for every seed
        per_dataset.append(np.einsum("bs,si,bi->b", seed_w, d, item_w))
    if not per_dataset:
        return None
    stats = 100.0 * np.mean(per_dataset, axis=0)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def seed_t_interval(
    runs: list[Flags], baseline: list[Flags] | None = None, datasets: list[str] | None = None, level: float = 0.95
) -> dict | None:
    """Seed-level interval beside the bootstrap: each seed's macro-mean accuracy (or paired difference) over
    `datasets`, and mean +- t(S-1) x sd / sqrt(S) over the seeds. Only the seeds vary here, so a reader sees
    how far three agreeing seeds go on their own. Points: percent. None with fewer than 2 seeds or no shared item.
    """
    import numpy as np
    from scipy import stats

    per_seed = []
    for s, run in enumerate(runs):
        groups = [run] + ([baseline[s]] if baseline is not None else [])
        keys = datasets if datasets is not None else sorted(set.intersection(*(set(r) for r in groups)))
        means = []
        for key in keys:
            if not all(key in r for r in groups):
                continue
            ids = sorted(set.intersection(*(set(r[key]) for r in groups)))
            if ids:
                a = np.mean([float(run[key][i]) for i in ids])
                b = np.mean([float(baseline[s][key][i]) for i in ids]) if baseline is not None else 0.0
                means.append(a - b)
        if means:
            per_seed.append(100.0 * float(np.mean(means)))
    if len(per_seed) < 2:
        return None
    mean, sd = float(np.mean(per_seed)), float(np.std(per_seed, ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, len(per_seed) - 1)) * sd / math.sqrt(len(per_seed))
    return {"mean": mean, "ci": [mean - half, mean + half], "per_seed": per_seed}
