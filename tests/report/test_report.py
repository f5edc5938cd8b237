"""Report from fabricated run folders (no model): aggregation across seeds and folds, CIs, published columns, plots."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from prada.config import RunConfig, load_config
from prada.io import atomic_write_jsonl
from prada.report import collect_results, write_report
from prada.report.markdown import PUBLISHED_FTCOT, fmt_cell
from prada.report.plots import plot_source_target_gap

DOMAIN = {
    "coin_flip": "symbolic",
    "last_letter_concatenation": "symbolic",
    "gsm8k": "arithmetic",
    "strategy_qa": "commonsense",
}


@dataclass
class FakeRun:
    method: str
    fold: str
    seed: int
    config: RunConfig
    dir: Path


def _make_run(root: Path, method: str, target: str | None, seed: int, correct: dict[str, int], n: int = 10) -> FakeRun:
    """A finished run folder: eval.json + predictions.jsonl (+ train_log.jsonl) as the real stages write them."""
    targets = [target] if target else []
    fold = target or "in-domain"
    cfg = load_config(
        None,
        [f"method={method}", f"seed={seed}", f"data.target_domains=[{','.join(targets)}]", "data.benchmark=ftcot12"],
    )
    run_dir = root / "runs" / f"{method}__{fold}__seed{seed}"
    run_dir.mkdir(parents=True)
    preds, per_ds = [], {}
    for ds, k in correct.items():
        preds += [
            {
                "dataset": ds,
                "id": f"{ds}-{i}",
                "domain": DOMAIN[ds],
                "question": f"q{i}",
                "output": "o",
                "prediction": "x",
                "answer": "x",
                "correct": i < k,
            }
            for i in range(n)
        ]
        per_ds[ds] = {"domain": DOMAIN[ds], "n": n, "accuracy": 100.0 * k / n}
    from prada.evaluation.metrics import summarize

    sources = sorted({DOMAIN[d] for d in correct} - set(targets))
    result = {"method": method, "datasets": per_ds, **summarize(per_ds, sources, targets)}
    (run_dir / "eval.json").write_text(json.dumps(result))
    atomic_write_jsonl(run_dir / "predictions.jsonl", preds)
    atomic_write_jsonl(
        run_dir / "train_log.jsonl",
        [
            {
                "step": s,
                "lm_loss": 3.0 / s,
                "domain_loss": 1.0,
                "lambda": s / 10,
                "domain_acc": 0.5,
                "lr": 1e-4,
                "tokens_per_s": 100.0,
            }
            for s in range(1, 6)
        ],
    )
    (run_dir / "train_done.json").write_text(json.dumps({"steps": 5}))
    return FakeRun(method, fold, seed, cfg, run_dir)


@pytest.fixture
def fake(tmp_path):
    runs = []
    for target in ("symbolic", "arithmetic"):
        for seed in (0, 1):
            for method, bonus in (("ft-cot", 0), ("prada", 2)):
                correct = {
                    "coin_flip": 5 + bonus + seed,
                    "last_letter_concatenation": 1,
                    "gsm8k": 3 + seed,
                    "strategy_qa": 6,
                }
                runs.append(_make_run(tmp_path, method, target, seed, correct))
    return (
        tmp_path,
        runs,
        {
            "name": "fake",
            "protocol": "leave-one-domain-out",
            "methods": ["ft-cot", "prada"],
            "seeds": [0, 1],
            "bootstrap": 200,
        },
    )


def test_aggregates_across_seeds_with_cis(fake):
    root, runs, exp = fake
    res = collect_results(root, runs, exp, n_boot=200)
    assert len(res["runs"]) == 8 and len(res["summary"]) == 4
    cell = next(s for s in res["summary"] if s["method"] == "prada" and s["fold"] == "symbolic")
    coin = cell["datasets"]["coin_flip"]
    assert coin["role"] == "target" and coin["accuracy"] == pytest.approx(75.0)  # seeds: 70 and 80
    assert coin["seed_sd"] == pytest.approx(5.0)
    lo, hi = coin["ci"]
    assert 0 <= lo <= coin["accuracy"] <= hi <= 100
    # target = symbolic macro mean (coin 75, last letter 10); source = arithmetic 35 + commonsense 60
    assert cell["target_accuracy"]["accuracy"] == pytest.approx(42.5)
    assert cell["source_accuracy"]["accuracy"] == pytest.approx(47.5)
    assert "gap" not in cell  # source and target are different datasets: no "gap" is reported
    prada = next(a for a in res["across_folds"] if a["method"] == "prada")
    assert prada["folds"] == ["symbolic", "arithmetic"]
    # arithmetic fold: target gsm8k 35; symbolic fold: target 42.5 -> mean 38.75
    assert prada["target_accuracy"]["accuracy"] == pytest.approx(38.75)
    assert set(res["published"]) == set(DOMAIN)
    assert res["published"]["coin_flip"]["gpt2_124m"] == PUBLISHED_FTCOT["coin_flip"]["gpt2_124m"] == 77.33


def test_write_report_files(fake):
    root, runs, exp = fake
    report = write_report(root, runs, exp)
    text = report.read_text()
    assert "## Source vs target" in text and "### Across folds" in text
    assert "FT-CoT GPT-2 124M" in text and "77.3" in text
    assert "75.0 [" in text and "sd 5.0" in text
    pngs = {p.name for p in root.glob("*.png")}
    assert {"accuracy_by_domain.png", "accuracy_by_dataset.png", "source_target_gap.png", "training_curves.png"} <= pngs
    results = json.loads((root / "results.json").read_text())
    assert results["plots"] and results["ci"]["level"] == 0.95
    assert "## Paired differences" in text and "prada − ft-cot" in text
    assert "gap (S-T)" not in text


def test_in_domain_has_no_target_and_no_gap_plot(tmp_path):
    runs = [_make_run(tmp_path, "ft-cot", None, 0, {"coin_flip": 5, "gsm8k": 3})]
    res = collect_results(
        tmp_path, runs, {"name": "ind", "protocol": "in-domain", "methods": ["ft-cot"], "seeds": [0]}, n_boot=200
    )
    assert res["folds"] == ["in-domain"] and res["across_folds"] == []
    assert res["summary"][0]["target_accuracy"] is None
    assert res["summary"][0]["source_accuracy"]["accuracy"] == pytest.approx(40.0)
    assert plot_source_target_gap(res, tmp_path / "gap.png") is None


def test_fmt_cell():
    assert fmt_cell(None) == "–"
    assert fmt_cell({"accuracy": 50.0, "ci": [40.0, 60.0]}) == "50.0 [40.0, 60.0]"
    assert fmt_cell({"accuracy": 50.0, "ci": [40.0, 60.0], "seed_sd": 1.25}).endswith("sd 1.2")


def test_paired_differences_are_per_fold_role_and_paired_by_seed(fake):
    root, runs, exp = fake
    res = collect_results(root, runs, exp, n_boot=200)
    pairs = {(p["a"], p["b"], p["fold"], p["role"]): p for p in res["paired"]}
    assert set(pairs) == {("prada", "ft-cot", f, r) for f in ("symbolic", "arithmetic") for r in ("source", "target")}
    p = pairs[("prada", "ft-cot", "symbolic", "target")]
    # mean over seeds of (prada macro target - ft-cot macro target), from the fabricated counts
    prada = next(s for s in res["summary"] if s["method"] == "prada" and s["fold"] == "symbolic")
    ftcot = next(s for s in res["summary"] if s["method"] == "ft-cot" and s["fold"] == "symbolic")
    assert p["diff"] == pytest.approx(
        prada["target_accuracy"]["accuracy"] - ftcot["target_accuracy"]["accuracy"], abs=0.01
    )
    lo, hi = p["ci"]
    assert lo <= p["diff"] <= hi and hi - lo > 0
    assert p["seeds"] == [0, 1] and p["n_items"] == 20


def test_report_of_the_runs_finished_so_far(fake, capsys):
    """`prada report DIR` on a half-done experiment: the finished runs only, marked partial (k of n planned)."""
    import yaml

    from prada.cli import main
    from prada.config import config_to_dict
    from prada.errors import PradaError
    from prada.report import report_finished

    root, runs, exp = fake
    for run in runs:
        (run.dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(run.config)))
    (runs[-1].dir / "eval.json").unlink()  # prada, arithmetic, seed 1: still evaluating
    (root / "experiment.yaml").write_text(yaml.safe_dump({**exp, "methods": ["ft-cot", "prada", "ptune"]}))
    path, done, planned = report_finished(root)
    assert (done, planned) == (7, 12)  # 2 folds x 3 trained methods x 2 seeds
    text = path.read_text()
    assert "Partial report: 7 of 12 planned runs" in text
    res = json.loads((root / "results.json").read_text())
    assert len(res["runs"]) == 7 and res["methods"] == ["ft-cot", "prada"]
    seeds = {(p["fold"], p["role"]): p["seeds"] for p in res["paired"]}
    assert seeds[("arithmetic", "target")] == [0] and seeds[("symbolic", "target")] == [0, 1]

    main(["report", str(root), "--out", str(root / "copy")])
    assert "report of 7 of 12 planned runs" in capsys.readouterr().out
    assert (root / "copy" / "report.md").read_text().count("| prada |") >= 1

    with pytest.raises(PradaError, match="no evaluated run"):
        report_finished(root / "copy")


def test_heldout_domain_diagnostics_table_and_plot(fake):
    """The last held-out check of each run (train.eval_every rows) is tabled and plotted; runs without one are not."""
    root, runs, exp = fake
    prada = next(r for r in runs if r.method == "prada")
    rows = [json.loads(line) for line in (prada.dir / "train_log.jsonl").read_text().splitlines()]
    for step, probe in ((2, 0.97), (4, 0.61)):
        rows[step - 1].update(
            heldout_probe_acc=probe,
            heldout_probe_majority=0.5,
            heldout_head_acc=0.5,
            heldout_lm_loss_source=1.25,
            heldout_lm_loss_target=2.5,
        )
    atomic_write_jsonl(prada.dir / "train_log.jsonl", rows)
    text = write_report(root, runs, exp).read_text()
    res = json.loads((root / "results.json").read_text())
    held = {r["run"]: r["heldout"] for r in res["runs"]}
    assert held[prada.dir.name]["step"] == 4 and held[prada.dir.name]["heldout_probe_acc"] == 0.61
    assert sum(v is not None for v in held.values()) == 1
    assert (
        "### Held-out domain diagnostics" in text
        and "| prada | symbolic | 0 | 4 | 0.61 | 0.50 | 0.50 | 1.250 | 2.500 |" in text
    )
    assert (root / "heldout_domain.png").stat().st_size > 10_000
