"""The second outside attack (issue 25), run folders: `train --out` over a user's own folder, a file, or a
finished run of another config. Each is one `prada: error:` line (or the right result) and touches nothing; each test
failed on the code before the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from reliability.campaign2 import snapshot
from reliability.harness import cli_error
from tiny import TINY_YAML, tiny_config

STEPS = ["train.max_steps=4", "train.save_every=2", "train.save_every_minutes=0", "eval.max_new_tokens=16"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir) -> Path:
    """A trained (4 steps) prada run."""
    from prada.train.loop import train

    run = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_config(data_dir, *STEPS), run, progress=False)
    return run


def _train_argv(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(TINY_YAML), f"data.data_dir={data_dir}", *STEPS, *extra, "--out", str(out)]


# --- item 1: `train --out` over a user's own folder ---------------------------------------------------------------


@pytest.mark.parametrize("their_config", ["lr: 0.1\nmodel: resnet50\n", "tiny.yaml"], ids=["foreign", "prada-keys"])
def test_train_refuses_a_users_folder_and_touches_nothing(data_dir, tmp_path, capsys, their_config):
    mine = tmp_path / "experiments"
    (mine / "checkpoint").mkdir(parents=True)
    (mine / "checkpoint" / "weights.bin").write_bytes(b"\x01" * 4096)
    text = TINY_YAML.read_text() if their_config == "tiny.yaml" else their_config
    (mine / "config.yaml").write_text(text)
    (mine / "train_log.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    (mine / "notes.txt").write_text("do not lose me")
    before = snapshot(mine)
    err = cli_error(*_train_argv(data_dir, mine), capsys=capsys)
    assert str(mine) in err and "prada did not write" in err
    assert snapshot(mine) == before


def test_train_out_a_file_is_one_error_line(data_dir, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    err = cli_error(*_train_argv(data_dir, target), capsys=capsys)
    assert "not a folder" in err and target.read_text() == "mine"


# --- item 6: `train --out` on a finished run --------------------------------------------------------------------


def test_train_on_a_finished_run_with_the_same_config_says_already_finished(finished, data_dir, tmp_path, capsys):
    from prada.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    main(_train_argv(data_dir, run))
    assert "already finished" in capsys.readouterr().out
    assert snapshot(run) == before


def test_train_on_a_finished_run_with_another_config_is_refused_naming_the_keys(finished, data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    err = cli_error(*_train_argv(data_dir, run, "train.lr=0.5", "seed=7"), capsys=capsys)
    assert "already finished" in err and "train.lr" in err and "seed" in err
    assert snapshot(run) == before
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] != 0.5


def test_a_run_killed_while_writing_its_config_starts_again(data_dir, tmp_path):
    from prada.train.loop import train

    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.yaml.k3j2.tmp").write_text("method: pra")  # atomic_file's temp, left by a kill
    train(tiny_config(data_dir, *STEPS), run, progress=False)
    assert (run / "train_done.json").exists()
