"""scripts/rederive.py recomputes a study's paired numbers from committed predictions alone, and catches a change."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(tmp_path_factory, synth_dir):
    from prada.experiment import run_experiment

    tmp = tmp_path_factory.mktemp("rederive")
    exp = yaml.safe_load((ROOT / "configs" / "tiny-run.yaml").read_text())
    exp.update(name="rederive", methods=["prior", "ft-cot", "prada"], seeds=[0, 1], explain=False, out_dir=str(tmp))
    exp["base"]["data"]["data_dir"] = str(synth_dir)
    exp["base"]["train"]["max_steps"] = 4
    (tmp / "exp.yaml").write_text(yaml.safe_dump(exp))
    return run_experiment(tmp / "exp.yaml", progress=False, log=None)


def _rederive(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rederive.py"), str(root)], capture_output=True, text=True
    )


def test_every_paired_number_is_rederived_from_the_predictions(study):
    results = json.loads((study / "results.json").read_text())
    assert any(p["diff"] != 0 for p in results["paired"])  # prior answers differently from the students
    out = _rederive(study)
    assert out.returncode == 0, out.stdout + out.stderr
    n = len(results["paired"])
    assert n >= 3 and f"{n} of {n} paired numbers re-derived" in out.stdout


def test_a_changed_prediction_is_caught(study, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    predictions = next(copy.glob("runs/prada__*seed0*/predictions.jsonl"))
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    target = next(r for r in rows if r["dataset"] == "synth_tracking")  # a target item
    target["correct"] = not target["correct"]
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _rederive(copy)
    assert out.returncode == 1
    assert "| NO |" in out.stdout


def _set_target_items_correct(predictions: Path) -> None:
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    for r in rows:
        if r["dataset"] == "synth_tracking":  # the target dataset of tiny-run's fold
            r["correct"] = True
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_share_of_the_gap_closed_runs_from_ft_cot_at_0_to_the_oracle_at_1(study, tmp_path):
    """An oracle that gets every target item right, and a prada whose target predictions are made all right
    too: prada closes the whole gap in every seed (share 1), ft-cot none of it (share 0)."""
    import shutil

    copy, oracle = tmp_path / "study", tmp_path / "oracle"
    shutil.copytree(study, copy)
    shutil.copytree(study, oracle)
    results = json.loads((oracle / "results.json").read_text())
    results["runs"] = [r for r in results["runs"] if r["method"] == "ft-cot"]
    (oracle / "results.json").write_text(json.dumps(results))
    for r in results["runs"]:
        _set_target_items_correct(oracle / r["dir"] / "predictions.jsonl")
    for predictions in copy.glob("runs/prada__*/predictions.jsonl"):
        _set_target_items_correct(predictions)

    plot = tmp_path / "gap.png"
    cmd = [sys.executable, str(ROOT / "scripts" / "rederive.py"), str(copy), "--oracle", str(oracle)]
    out = subprocess.run([*cmd, "--gap-plot", str(plot)], capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr  # prada's changed predictions disagree with results.json
    rows = {line.split("|")[1].strip(): line for line in out.stdout.splitlines() if " − oracle |" in line}
    prada, ft_cot = rows["prada − oracle"].split("|"), rows["ft-cot − oracle"].split("|")
    gap = float(ft_cot[6])
    assert gap > 0, "the oracle is all right on the target, ft-cot is not"
    assert prada[2].strip() == "+0.0" and prada[5].strip() == "+0.0, +0.0"
    assert prada[4].strip() == "[+0.0, +0.0]", "every seed's m − oracle is 0: a t interval of width 0"
    per_seed = [float(d) for d in ft_cot[5].split(",")]
    assert len(per_seed) == 2 and abs(sum(per_seed) / 2 + gap) < 0.051, "ft-cot − oracle is minus the gap"
    lo, hi = (float(x) for x in ft_cot[4].strip(" []").split(","))
    assert lo <= -gap <= hi
    assert prada[7].strip() == "+1.00"
    assert prada[8].strip() == "+1.00, +1.00"
    assert ft_cot[7].strip() == "+0.00"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    refused = subprocess.run([*cmd[:3], "--gap-plot", str(plot)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--gap-plot needs --oracle" in refused.stderr
