"""Intervals: honest at 0% and 100%, not narrowed by copied seeds, paired across methods."""

from __future__ import annotations

import random

import pytest

from prada.evaluation.metrics import bootstrap_ci, wilson_ci


def flags(k: int, n: int, name: str = "d") -> dict[str, dict[str, bool]]:
    return {name: {str(i): i < k for i in range(n)}}


def test_wilson_never_collapses_at_the_edges():
    lo, hi = wilson_ci(0, 12)
    assert lo == 0.0 and 20.0 < hi < 30.0  # the exact (Clopper-Pearson) interval is [0, 26.5]
    lo, hi = wilson_ci(12, 12)
    assert 70.0 < lo < 80.0 and hi == 100.0
    assert wilson_ci(6, 12)[0] < 50.0 < wilson_ci(6, 12)[1]


@pytest.mark.parametrize("k", [0, 12])
def test_bootstrap_of_0_or_12_of_12_is_not_a_point(k):
    lo, hi = bootstrap_ci([flags(k, 12)], n_boot=500)
    assert hi - lo > 10.0
    assert lo <= 100.0 * k / 12 <= hi


def test_copies_of_one_seed_do_not_narrow_the_interval():
    one = flags(5, 12)
    single = bootstrap_ci([one], n_boot=2000, seed=1)
    copied = bootstrap_ci([one, one, one], n_boot=2000, seed=1)
    assert copied[1] - copied[0] >= single[1] - single[0] - 1e-9


def test_independent_seeds_on_the_same_items_are_not_treated_as_more_items():
    """Three seeds that disagree item by item: the interval is no narrower than sqrt(3) would make it."""
    rng = random.Random(0)
    seeds = [{"d": {str(i): rng.random() < 0.5 for i in range(40)}} for _ in range(3)]
    pooled_as_items = {"d": {f"{s}-{i}": v for s, f in enumerate(seeds) for i, v in f["d"].items()}}
    joint = bootstrap_ci(seeds, n_boot=2000)
    naive = bootstrap_ci([pooled_as_items], n_boot=2000)
    assert joint[1] - joint[0] > 1.3 * (naive[1] - naive[0])


def test_paired_difference_uses_the_pairing():
    """Two methods that agree on most items: the paired interval is much narrower than the unpaired spread."""
    rng = random.Random(1)
    base = {str(i): rng.random() < 0.5 for i in range(100)}
    better = dict(base)
    for i in list(base)[:10]:  # b is wrong on 10 items where a is right
        base[i], better[i] = False, True
    lo, hi = bootstrap_ci([{"d": better}], [{"d": base}], n_boot=2000)
    assert 0.0 < lo < 10.0 < hi < 20.0
    same = bootstrap_ci([{"d": base}], [{"d": base}], n_boot=2000)
    assert same[0] < 0.0 < same[1]  # no difference shown, and the interval is not the point [0, 0]


def test_paired_interval_needs_one_baseline_per_seed():
    with pytest.raises(ValueError):
        bootstrap_ci([flags(1, 4), flags(2, 4)], [flags(1, 4)])


def test_a_seed_is_resampled_once_per_replicate_for_every_dataset():
    """Seed 0 right on every item of three datasets, seed 1 wrong on every one: a replicate that draws seed 0
    twice draws it for all three datasets, so a quarter of the replicates sit near 100 and a quarter near 0.
    Drawn per dataset (the old two-level bootstrap), all-three-alike happens in 1/64 of them and the interval
    shrank to about [17, 83]: seed luck averaged away."""
    from prada.evaluation.metrics import bootstrap_ci

    right = {d: {str(i): True for i in range(30)} for d in ("a", "b", "c")}
    wrong = {d: {str(i): False for i in range(30)} for d in ("a", "b", "c")}
    lo, hi = bootstrap_ci([right, wrong], n_boot=4000, seed=0)
    assert lo < 5 and hi > 95


def test_seed_t_interval_reads_the_seeds_own_paired_differences():
    from prada.evaluation.metrics import seed_t_interval

    def run(n_right, n=10):
        return {"d": {str(i): i < n_right for i in range(n)}}

    out = seed_t_interval([run(6), run(7), run(8)], [run(5), run(5), run(5)])
    assert out["per_seed"] == pytest.approx([10.0, 20.0, 30.0])
    assert out["mean"] == pytest.approx(20.0)
    half = 4.302652729911275 * 10.0 / 3**0.5  # t(0.975, 2) x sd / sqrt(3)
    assert out["ci"] == pytest.approx([20.0 - half, 20.0 + half])
    assert seed_t_interval([run(6)], [run(5)]) is None  # one seed: no spread to read
