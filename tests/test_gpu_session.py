"""scripts/gpu_session.sh, dry-run on the CPU: tiny-random student, a few steps, a short deadline.

What a lent GPU session must bring back: the host-boundness measurement, finished jobs' small outputs in
scripts/study.sh's results layout (in results.tgz: the device returns at most 8 flat files), the jobs summary
with what finished and what was left, a trainer stopped by SIGTERM with its checkpoint, and no weights.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

from tiny import REPO

# the real ftcot12 datasets of study 2's targets, stood in for by synthetic ones (no ../shared/data in CI)
STAND_INS = {
    "last_letter_concatenation": ("synth_last_letter", 3),
    "coin_flip": ("synth_coin_flip", 3),
    "tracking_shuffled_objects": ("synth_tracking", 3),
    "date_understanding": ("synth_date", 1),
    "multiarith": ("synth_arithmetic", 1),
    "addsub": ("synth_arithmetic", 2),
}


def _study2_data(out: Path) -> None:
    """data/study2 as scripts/study2_data.py lays it out, its `real` datasets synthetic stand-ins."""
    sys.path.insert(0, str(REPO / "scripts"))
    import study2_data

    from prada.data.schema import write_examples
    from prada.data.synth import generate

    real = out / "ftcot12"
    for name, (family, difficulty) in STAND_INS.items():
        items = [replace(e, dataset=name, id=f"{name}-{i}") for i, e in enumerate(generate(family, 30, 7, difficulty))]
        write_examples(real / name / "train.jsonl", items[:20])
        write_examples(real / name / "test.jsonl", items[20:])
    (real / "summary.json").write_text("{}")  # "built": study2_data.build reads the datasets above
    study2_data.build(out / "no-shared-data", out)


def test_plan_is_derived_from_the_study2_configs():
    """The default job list: positive_control.py's study-2 settings, then `prada run`'s plan of the two configs."""
    sys.path.insert(0, str(REPO / "scripts"))
    import gpu_jobs
    import positive_control

    from prada.experiment import load_experiment, plan_runs

    jobs = gpu_jobs.plan_jobs(list(gpu_jobs.PARTS), [], [])
    expected = [f"control/{s}" for s in positive_control.SETTINGS_STUDY2]
    for part in ("synth2real", "oracle"):
        exp = load_experiment(REPO / gpu_jobs.EXPERIMENTS[part][0])
        expected += [f"{part}/{r.name}" for r in plan_runs(exp, Path(exp.out_dir) / exp.name)]
    assert [j["name"] for j in jobs] == expected
    assert len(jobs) == 5 + 17 + 3  # 5 settings; prior, zero-shot + 5 trained methods x 3 seeds; the oracle's 3 seeds
    by_name = {j["name"]: j for j in jobs}
    assert by_name["synth2real/prada__real__seed0"]["dir"] == "runs/study2-synth2real/runs/prada__real__seed0"
    assert by_name["synth2real/prada__real__seed0"]["dest"] == "results/study2/synth2real/runs/prada__real__seed0"
    assert by_name["oracle/ft-cot__in-domain__seed2"]["dest"] == "results/study2/oracle/runs/ft-cot__in-domain__seed2"
    assert by_name["control/ptune"]["dest"] == "results/study2/control/ptune"


def _stop_when_the_long_trainer_runs(proc: subprocess.Popen, out: Path, work: Path, limit: float = 280) -> None:
    """SIGTERM to the session once the short runs finished and the long tuning-fold run logged a step (a
    deadline reached from outside: the test does not depend on the machine's speed)."""
    log = work / "runs" / "study2" / "control" / "ptune" / "train_log.jsonl"
    give_up = time.time() + limit
    while proc.poll() is None and time.time() < give_up:
        time.sleep(1)
        try:
            finished = json.loads((out / "jobs.json").read_text())["finished"]
        except (OSError, ValueError, KeyError):
            continue
        if "synth2real/ft-cot__real__seed0" in finished and log.exists() and log.read_text().strip():
            break
    proc.send_signal(signal.SIGTERM)


def test_gpu_session_dry_run_on_the_cpu(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    _study2_data(work / "data" / "study2")
    env = {
        **os.environ,
        "MODEL": "tiny-random",
        "PY": sys.executable,
        "WORK": str(work),
        "OUT": str(out),
        "TOTAL_S": "400",
        "HB_PROCS": "2",
        "HB_STEPS": "12",
        "HB_WARMUP": "2",
        "WORKERS": "1",
        "BENCH": "0",
        "GRACE_S": "15",
        "MIN_JOB_S": "0",
        # a short reported-fold run first, then the tuning fold, whose first run is too long to finish
        "PARTS": "synth2real,control",
        "EXP_OVERRIDES": "seeds=[0] methods=[ft-cot] explain_per_dataset=2",
        "JOB_OVERRIDES": "train.max_steps=3 train.batch_size=2 adversary.target_batch_size=2 "
        "data.max_test_per_dataset=1 eval.max_new_tokens=4 eval.batch_size=4",
        "CONTROL_OVERRIDES": "train.max_steps=100000 train.eval_every=0 train.save_every=0",
    }
    with open(tmp_path / "session.out", "w") as log:
        proc = subprocess.Popen(["bash", str(REPO / "scripts" / "gpu_session.sh")], env=env, stdout=log, stderr=log)
        _stop_when_the_long_trainer_runs(proc, out, work)
        rc = proc.wait(timeout=120)
    assert rc == 0, (tmp_path / "session.out").read_text()[-4000:]

    # what the device would return: at most 8 flat files, named in letters, digits, '.', '_' and '-'
    files = sorted(p.name for p in out.iterdir())
    assert {"env.txt", "hostbound.json", "jobs.json", "results.tgz", "session.log"} <= set(files), files
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f) and (out / f).is_file() for f in files)

    hb = json.loads((out / "hostbound.json").read_text())
    assert hb["one"]["tokens_per_s"] > 0 and hb["one"]["steps_per_s"] > 0, hb
    assert hb["many"]["procs"] == 2 and "ratio" in hb and hb["workers"] in (1, 2), hb
    if "error" not in hb["many"]:
        assert hb["many"]["tokens_per_s"] > 0 and hb["ratio"] == round(
            hb["many"]["tokens_per_s"] / hb["one"]["tokens_per_s"], 3
        )

    summary = json.loads((out / "jobs.json").read_text())
    short = ["synth2real/ft-cot__real__seed0"]
    control = [n for n in summary["jobs"] if n.startswith("control/")]
    assert len(control) == 5 and set(summary["jobs"]) == {*short, *control}
    assert summary["finished"] == short, summary
    assert summary["left"] == control
    stopped = summary["jobs"]["control/ptune"]  # the long trainer, stopped by the SIGTERM: a checkpoint
    assert stopped["status"] == "interrupted" and stopped["checkpoint_step"] >= 1, stopped
    assert all(summary["jobs"][n]["status"] == "not-started" for n in control[1:])

    with tarfile.open(out / "results.tgz") as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "back", filter="data")
    run = "results/study2/synth2real/runs/ft-cot__real__seed0"
    for f in (
        "config.yaml",
        "train_log.jsonl",
        "train_done.json",
        "eval.json",
        "predictions.jsonl",
        "explain/explain.json",
    ):
        assert f"{run}/{f}" in names, sorted(names)
    assert "results/study2/synth2real/experiment.yaml" in names
    assert not any(n.startswith("results/study2/control/") for n in names)  # nothing of an unfinished job
    src = work / "runs" / "study2-synth2real" / "runs" / "ft-cot__real__seed0"
    for f in ("eval.json", "predictions.jsonl"):
        assert (tmp_path / "back" / run / f).read_bytes() == (src / f).read_bytes()
    assert not any(n.endswith(".safetensors") for n in names)
    assert not list(out.rglob("*.safetensors"))
    assert list(src.rglob("*.safetensors"))  # the weights exist, and stayed behind

    # a second call on the same machine: the finished run is not run again, and its outputs come back again
    out2 = tmp_path / "out2"
    again = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "gpu_jobs.py"),
            "run",
            "--parts",
            "synth2real",
            "--deadline",
            str(time.time() + 60),
            "--out",
            str(out2),
            "--stage",
            str(tmp_path / "stage2"),
        ],
        cwd=work,
        env={
            **env,
            "PYTHONPATH": str(REPO / "src"),
            "JOB_OVERRIDES": "student.model=tiny-random " + env["JOB_OVERRIDES"],
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    summary2 = json.loads((out2 / "jobs.json").read_text())
    assert summary2["jobs"]["synth2real/ft-cot__real__seed0"]["status"] == "finished-earlier"
    assert summary2["finished"] == short and summary2["left"] == [] and summary2["worker_exit_codes"] == []
    with tarfile.open(out2 / "results.tgz") as tar:
        assert f"{run}/predictions.jsonl" in tar.getnames()
