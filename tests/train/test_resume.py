"""Kill -9 mid-run, resume, and end where an uninterrupted run ends (same config, same seed, CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from tiny import stop_signals_at_default, tiny_config

from prada.config import save_config
from prada.errors import PradaError
from prada.train.loop import train


def _weights(run):
    files = sorted(run.rglob("*.safetensors"))
    return {f"{f.relative_to(run)}:{k}": v for f in files for k, v in load_file(str(f)).items()}


def test_kill_and_resume_matches_uninterrupted(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, "method=prada", "train.max_steps=16", "train.save_every=3")
    full = train(cfg, tmp_path / "full", progress=False)

    run = tmp_path / "killed"
    run.mkdir()
    save_config(cfg, tmp_path / "cfg.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prada", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(run)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "checkpoint" / "step.json").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # let it run past the checkpoint, so the log holds steps the resume must drop
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "train_done.json").exists(), "run finished before the kill; make it longer"

    with pytest.raises(PradaError, match="--resume"):
        train(cfg, run, progress=False)  # a plain restart must not silently overwrite
    train(resume=run, progress=False)

    a, b = _weights(full), _weights(run)
    assert a.keys() == b.keys()
    max_diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert max_diff < 1e-6, max_diff
    steps = [
        int(line.split('"step": ')[1].split(",")[0]) for line in (run / "train_log.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 17))


def test_resume_requires_a_run_folder(tmp_path):
    with pytest.raises(PradaError, match="config.yaml"):
        train(resume=tmp_path / "nothing", progress=False)


@pytest.mark.parametrize("minutes, every, saved", [(0.0, 0, []), (1e-9, 0, [1, 2, 3]), (0.0, 2, [2]), (60.0, 0, [])])
def test_checkpoints_by_step_count_and_by_time_since_the_last(synth_dir, tmp_path, minutes, every, saved):
    from unittest import mock

    from prada.train import checkpoint

    steps = []
    cfg = tiny_config(
        synth_dir,
        "method=ft-cot",
        "train.max_steps=4",
        f"train.save_every={every}",
        f"train.save_every_minutes={minutes}",
    )
    with mock.patch.object(checkpoint, "save_checkpoint", side_effect=lambda run, model, opt, step: steps.append(step)):
        train(cfg, tmp_path / "r", progress=False)
    assert steps == saved  # never at the last step: the final model supersedes a checkpoint there


def _logged_a_step(run: Path) -> bool:
    try:
        return bool((run / "train_log.jsonl").read_text().strip())  # the file itself exists before the loop starts
    except OSError:
        return False


def test_ctrl_c_finishes_the_step_writes_a_checkpoint_and_resume_ends_like_an_uninterrupted_run(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, "method=prada", "train.max_steps=40", "train.save_every=0")
    full = train(cfg, tmp_path / "full", progress=False)

    run = tmp_path / "interrupted"
    save_config(cfg, tmp_path / "cfg.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prada", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(run)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=stop_signals_at_default,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not _logged_a_step(run):  # inside the loop, where Ctrl-C finishes the step
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert not (run / "train_done.json").exists(), "run finished before the Ctrl-C; make it longer"
    logged = len((run / "train_log.jsonl").read_text().splitlines())
    step = json.loads((run / "checkpoint" / "step.json").read_text())["step"]
    assert step == logged >= 1  # the checkpoint is of the last finished step: nothing trained is lost
    assert f"stopped after step {step} of {run}, checkpoint written); continue with `prada train --resume {run}`" in err
    assert "Traceback" not in err

    train(resume=run, progress=False)
    a, b = _weights(full), _weights(run)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it_and_still_checkpoints_on_sigterm(synth_dir, tmp_path):
    """A background job of a script starts with SIGINT ignored (Ctrl-C is for the foreground job): prada keeps that,
    as Python does, instead of installing its finish-the-step handler for it; SIGTERM still checkpoints."""
    cfg = tiny_config(synth_dir, "method=ft-cot", "train.max_steps=400", "train.save_every=0")
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "background"
    proc = subprocess.Popen(
        [sys.executable, "-m", "prada", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not _logged_a_step(run):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None, "Ctrl-C stopped a run that was started ignoring it"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Ctrl-C" not in err and "SIGTERM: finishing this step" in err
    assert (run / "checkpoint" / "step.json").exists() and not (run / "train_done.json").exists()
