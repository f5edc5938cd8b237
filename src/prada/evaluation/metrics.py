"""Accuracy tables (per dataset, per domain, source vs target) and bootstrap confidence intervals."""

from __future__ import annotations

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


def bootstrap_ci(
    flags_by_group: list[list[bool]], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the macro mean accuracy, resampling items within each group (dataset or seed x dataset).

    Resampling n 0/1 flags with replacement is a binomial draw, so each group costs one vectorised call.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = [g for g in flags_by_group if g]
    if not groups:
        return (0.0, 0.0)
    stats = np.mean([100.0 * rng.binomial(len(g), sum(g) / len(g), n_boot) / len(g) for g in groups], axis=0)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))
