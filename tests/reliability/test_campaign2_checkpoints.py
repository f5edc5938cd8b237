"""The second outside attack (issue 25), checkpoints: a config.yaml edited before a resume (item 8), a step.json
without checksums or listing paths outside the checkpoint (item 9). Each is one error naming the file, at once."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from reliability.harness import cli_error
from tiny import tiny_config

STEPS = ["train.max_steps=4", "train.save_every=2", "train.save_every_minutes=0"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, synth_dir) -> Path:
    """A run stopped after its step-2 checkpoint, before its final weights (a kill at that point)."""
    import prada.train.loop as loop

    data = tmp_path_factory.mktemp("data") / "synth"
    shutil.copytree(synth_dir, data)
    run = tmp_path_factory.mktemp("interrupted") / "run"
    real, loop.finish = loop.finish, lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.train(tiny_config(data, *STEPS), run, progress=False)
    finally:
        loop.finish = real
    assert (run / "checkpoint" / "step.json").exists()
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def test_a_resume_refuses_an_edited_config_naming_the_keys(interrupted, tmp_path, capsys):
    run = _copy(interrupted, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"]["lr"], cfg["train"]["batch_size"] = cfg["train"]["lr"] * 10, cfg["train"]["batch_size"] * 2
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    err = cli_error("train", "--resume", str(run), capsys=capsys)
    assert "edited" in err and "train.lr" in err and "train.batch_size" in err
    assert not (run / "train_done.json").exists()


def _forge(folder: Path, files: dict | None) -> None:
    from prada.train import checkpoint as ck

    meta = {"step": 2} if files is None else {"step": 2, "sha256": files, "digest": ck._digest(2, files)}
    (folder / "step.json").write_text(json.dumps(meta))


def test_a_step_json_without_checksums_is_refused(interrupted, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    run = _copy(interrupted, tmp_path)
    folder = run / "checkpoint"
    weights = load_file(str(folder / "trainable.safetensors"))
    save_file({k: v * 0 + 1 for k, v in weights.items()}, str(folder / "trainable.safetensors"))  # edited weights
    _forge(folder, None)
    err = cli_error("train", "--resume", str(run), capsys=capsys)
    assert "no sha256" in err and str(folder) in err
    assert not (run / "train_done.json").exists()


@pytest.mark.parametrize("name", ["/dev/zero", "../../../../../../dev/zero", "link", "fifo"])
def test_a_step_json_naming_anything_but_a_regular_file_inside_is_refused_at_once(interrupted, tmp_path, name):
    import os

    from prada.errors import PradaError
    from prada.train.checkpoint import read_step

    run = _copy(interrupted, tmp_path)
    folder = run / "checkpoint"
    if name == "link":
        (folder / name).symlink_to("/dev/zero")
    elif name == "fifo":
        os.mkfifo(folder / name)
    files = json.loads((folder / "step.json").read_text())["sha256"]
    _forge(folder, {**files, name: "0" * 64})
    outcome: list = []

    def read() -> None:
        try:
            read_step(folder)
        except PradaError as e:
            outcome.append(str(e))

    reader = threading.Thread(target=read, daemon=True)  # a hang (hashing /dev/zero) fails the test, not the suite
    reader.start()
    reader.join(timeout=20)
    assert outcome and "not a regular file inside" in outcome[0], outcome
