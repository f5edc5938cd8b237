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


def test_pass_rule_drops_failing_families_and_the_gap_check_reads_only_the_kept_targets(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setattr(rules, "RESULTS", tmp_path)
    monkeypatch.setattr(rules, "PASS", tmp_path / "learning" / "pass.json")
    step = tmp_path / "learning" / "step-400"
    step.mkdir(parents=True)
    (step / "dev.json").write_text(json.dumps({"datasets": {k: {"accuracy": 50.0} for k in rules.FAMILIES}}))
    right = {"synth_coin_flip": 95, "synth_arithmetic": 90, "synth_last_letter": 79}  # of 100; others 30

    def rows(correct_of):
        return "".join(
            json.dumps({"dataset": k, "id": f"{k}-{i}", "correct": i < correct_of(k)}) + "\n"
            for k in rules.FAMILIES
            for i in range(100)
        )

    (step / "test.predictions.jsonl").write_text(rows(lambda k: right.get(k, 30)))
    (tmp_path / "learning" / "prior").mkdir()
    (tmp_path / "learning" / "prior" / "test.predictions.jsonl").write_text(rows(lambda k: 50))
    assert rules.pass_rule() == 0
    outcome = json.loads(rules.PASS.read_text())
    assert outcome["kept_families"] == ["synth_coin_flip", "synth_arithmetic"]  # last_letter: 79 < 80
    assert outcome["kept_real_datasets"] == ["coin_flip", "multiarith", "addsub"]
    real = {"coin_flip": 60.0, "multiarith": 10.0, "addsub": 20.0, "date_understanding": 0.0}
    oracle = {"coin_flip": 70.0, "multiarith": 30.0, "addsub": 30.0, "date_understanding": 90.0}
    (step / "real-dev.json").write_text(json.dumps({"datasets": {k: {"accuracy": v} for k, v in real.items()}}))
    (tmp_path / "oracle-gapcheck" / "step-400").mkdir(parents=True)
    (tmp_path / "oracle-gapcheck" / "step-400" / "dev.json").write_text(
        json.dumps({"datasets": {k: {"accuracy": v} for k, v in oracle.items()}})
    )
    capsys.readouterr()
    assert rules.gap() == 0
    out = capsys.readouterr().out
    assert "date_understanding" not in out and "macro gap +13.3 points: worth studying" in out  # (10+20+10)/3


def test_over_steps_evaluates_seed_0_and_1_snapshots_on_the_real_test_items_and_tables_them_with_s(
    tmp_path, monkeypatch, capsys, synth_dir
):
    """A tiny ft-cot run (seed 1) with a snapshot at step 2 of 4: the snapshot is evaluated once on the kept test file and
    copied under results (predictions beside), and the table lists step 2 (snapshot) and 4 (the run's eval.json)."""
    import json
    import shutil
    import subprocess
    import sys

    from tiny import tiny_config

    from prada.train.loop import train

    runs = tmp_path / "runs"
    run = train(
        tiny_config(synth_dir, "method=ft-cot", "train.max_steps=4", "train.snapshot_steps=[2]", "train.save_every=0"),
        runs / "ft-cot__real__seed1",
        progress=False,
    )
    results = tmp_path / "results"
    monkeypatch.setattr(rules, "RESULTS", results)
    monkeypatch.setattr(rules, "PASS", results / "learning" / "pass.json")
    monkeypatch.setattr(rules, "OVER_STEPS", results / "synth2real" / "snapshots")
    monkeypatch.setattr(rules, "KEPT_TEST", synth_dir / "synth_arithmetic" / "test.jsonl")
    rules.PASS.parent.mkdir(parents=True)
    rules.PASS.write_text(json.dumps({"kept_real_datasets": ["synth_arithmetic"]}))
    bin_dir = Path(sys.executable).parent
    shutil.copytree(run, runs / "ft-cot__real__seed2")  # seed 2's snapshots are not evaluated (budget)
    (dest,) = list(rules.evaluate_snapshots(runs, bin_dir))
    assert dest == rules.OVER_STEPS / "ft-cot__real__seed1" / "step-2"
    snap = json.loads((dest / "real-test.json").read_text())
    assert set(snap["datasets"]) == {"synth_arithmetic"}
    assert (
        len((dest / "real-test.predictions.jsonl").read_text().splitlines())
        == snap["datasets"]["synth_arithmetic"]["n"]
    )
    assert list(rules.evaluate_snapshots(runs, bin_dir)) == []  # done once
    # the run's own evaluation (S) as scripts/study.sh commits it
    saved = results / "synth2real" / "runs" / "ft-cot__real__seed1"
    saved.mkdir(parents=True)
    subprocess.run(
        [
            str(bin_dir / "prada"),
            "eval",
            "-q",
            "--run",
            str(run),
            "--data",
            str(rules.KEPT_TEST),
            "--out",
            str(saved / "eval.json"),
        ],
        check=True,
    )
    for name in ("train_log.jsonl", "train_done.json"):
        shutil.copy(run / name, saved / name)
    # a run whose snapshots were lost (weights live in runs/ only) has one point: not tabled
    shutil.copytree(saved, saved.with_name("ft-cot__real__seed0"))
    capsys.readouterr()
    assert rules.over_steps() == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ft-cot |")]
    final = json.loads((saved / "eval.json").read_text())["datasets"]["synth_arithmetic"]["accuracy"]
    at2 = snap["datasets"]["synth_arithmetic"]["accuracy"]
    assert lines == [f"| ft-cot | 1 | 2 | {at2:.1f} | {at2:.1f} |", f"| ft-cot | 1 | 4 | {final:.1f} | {final:.1f} |"]
