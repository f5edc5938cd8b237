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
