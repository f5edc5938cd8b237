"""Study 2's step-budget rule (scripts/study2_rules.py), on made-up curves: the first grid step with every family >= 80%."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("study2_rules", ROOT / "scripts" / "study2_rules.py")
rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rules)


def curve(*rows):
    return {step: {"datasets": {k: {"accuracy": a} for k, a in zip(rules.FAMILIES, accs)}} for step, accs in rows}


def test_first_step_with_every_family_over_the_bar():
    c = curve((50, [90, 90, 90, 90, 79.9]), (100, [80, 85, 99, 80, 81]), (200, [100] * 5))
    assert rules.step_budget(c)[0] == 100


def test_ceiling_when_no_step_passes_and_undecided_before_it_is_in():
    low = [(s, [95, 95, 95, 95, 50]) for s in (50, 100, 200, 300)]
    assert rules.step_budget(curve(*low))[0] is None
    assert rules.step_budget(curve(*low, (400, [95, 95, 95, 95, 60])))[0] == 400
