"""Checkpoints through accelerate's save_state / load_state (what FSDP / DeepSpeed need) inside the atomic
swap: an interrupted run resumed from one ends where the uninterrupted run ends, with 1 and 2 processes."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from tiny import tiny_config, two_process_command, two_process_env

from prada.config import save_config
from prada.model_aliases import resolve_model
from prada.train import checkpoint, loop
from prada.train.checkpoint import ACCELERATE_STATE, read_step


class _Stop(Exception):
    pass


def _weights(run: Path) -> dict:
    files = sorted(run.rglob("*.safetensors"))
    return {f"{f.relative_to(run)}:{k}": v for f in files for k, v in load_file(str(f)).items()}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_one_process_resumes_from_an_accelerate_checkpoint(synth_dir, tmp_path, monkeypatch):
    cfg = tiny_config(synth_dir, "method=prada", "train.max_steps=8", "train.save_every=4")
    cfg.train.checkpoint_format = "accelerate"
    full = loop.train(cfg, tmp_path / "full", progress=False)

    saved = checkpoint.save_accelerate_checkpoint

    def save_then_crash(run_dir, accelerator, step):
        saved(run_dir, accelerator, step)
        folder = run_dir / "checkpoint"
        assert read_step(folder) == step and (folder / ACCELERATE_STATE / "optimizer.bin").exists()
        raise _Stop

    monkeypatch.setattr(checkpoint, "save_accelerate_checkpoint", save_then_crash)
    with pytest.raises(_Stop):
        loop.train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(checkpoint, "save_accelerate_checkpoint", saved)
    loop.train(resume=tmp_path / "cut", progress=False)
    assert _max_diff(_weights(full), _weights(tmp_path / "cut")) < 1e-6


def test_two_processes_resume_from_an_accelerate_checkpoint(synth_dir, tmp_path):
    resolve_model("tiny-random")  # built once here, not raced by two ranks
    cfg = tiny_config(synth_dir, "method=prada", "train.max_steps=40", "train.save_every=2", "train.batch_size=4")
    cfg.train.checkpoint_format = "accelerate"
    save_config(cfg, tmp_path / "cfg.yaml")
    env = two_process_env(dict(os.environ), tmp_path / "hf")
    command = lambda *a: two_process_command("train", *a)  # noqa: E731

    full = subprocess.run(
        command("--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "full"), "-q"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert full.returncode == 0, full.stderr[-3000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        command("--config", str(tmp_path / "cfg.yaml"), "--out", str(run), "-q"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "checkpoint" / "step.json").exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    assert not (run / "train_done.json").exists(), "run finished before the kill; make it longer"
    assert sorted(p.name for p in (run / "checkpoint" / ACCELERATE_STATE).glob("random_states_*")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]  # every rank's RNG
    resumed = subprocess.run(command("--resume", str(run), "-q"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _max_diff(_weights(tmp_path / "full"), _weights(run)) < 1e-6
