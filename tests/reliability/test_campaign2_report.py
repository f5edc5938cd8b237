"""The second outside attack (issue 25) on `prada report`: damaged or forged run files (item 11). Each is one error
line naming the file, or a report whose accuracies come from the predictions (with intervals that hold them)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from reliability.harness import cli_error
from tiny import tiny_config

STEPS = ["method=ft-cot", "train.max_steps=2", "train.save_every=0", "eval.max_new_tokens=8"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, synth_dir) -> Path:
    """An experiment folder holding one trained and evaluated run (as `prada run` lays it out)."""
    from prada.evaluation.evaluate import evaluate_run
    from prada.train.loop import train

    data = tmp_path_factory.mktemp("data") / "synth"
    shutil.copytree(synth_dir, data)
    root = tmp_path_factory.mktemp("exp") / "exp"
    run = root / "runs" / "ft-cot__in-domain__seed0"
    train(tiny_config(data, *STEPS), run, progress=False)
    evaluate_run(run, progress=False)
    return root


def _copy(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "exp"
    shutil.copytree(root, out)
    return out, out / "runs" / "ft-cot__in-domain__seed0"


def _drop_correct(run: Path) -> None:
    lines = (run / "predictions.jsonl").read_text().splitlines()
    row = json.loads(lines[3])
    del row["correct"]
    lines[3] = json.dumps(row)
    (run / "predictions.jsonl").write_text("\n".join(lines) + "\n")


def _explain(run: Path, content: str) -> None:
    (run / "explain").mkdir()
    (run / "explain" / "explain.json").write_text(content)


@pytest.mark.parametrize(
    "damage, name",
    [
        (lambda run: (run / "eval.json").write_text("{}"), "eval.json"),
        (_drop_correct, "predictions.jsonl"),
        (lambda run: _explain(run, "[1, 2]"), "explain.json"),
    ],
    ids=["empty-eval", "prediction-without-correct", "explain-list"],
)
def test_report_on_damaged_run_files_is_one_error_naming_the_file(experiment, tmp_path, capsys, damage, name):
    root, run = _copy(experiment, tmp_path)
    damage(run)
    err = cli_error("report", str(root), capsys=capsys)
    assert name in err


def test_report_recomputes_forged_accuracies_and_writes_no_bare_nan(experiment, tmp_path):
    from prada.cli import main

    root, run = _copy(experiment, tmp_path)
    result = json.loads((run / "eval.json").read_text())
    first, second = sorted(result["datasets"])[:2]
    result["datasets"][first]["accuracy"] = 99.0  # forged
    result["datasets"][second]["accuracy"] = float("nan")
    result["mean_accuracy"] = 99.0
    (run / "eval.json").write_text(json.dumps(result))
    main(["report", str(root)])
    text = (root / "results.json").read_text()
    assert "NaN" not in text
    (record,) = json.loads(text)["runs"]
    flags = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    for key in (first, second):
        mine = [r["correct"] for r in flags if r["dataset"] == key]
        acc = record["eval"]["datasets"][key]["accuracy"]
        assert math.isclose(acc, 100.0 * sum(mine) / len(mine))
        lo, hi = record["ci"]["datasets"][key]
        assert lo <= acc <= hi
