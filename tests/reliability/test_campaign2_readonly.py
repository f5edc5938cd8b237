"""The second outside attack (issue 25) on read-only run folders (item 12): `eval --out elsewhere` works without
writing into the run; commands that must write into it say so in one error line, never a traceback."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from reliability.campaign2 import snapshot
from reliability.harness import cli_error
from tiny import tiny_config

STEPS = ["method=ft-cot", "train.max_steps=2", "train.save_every=0", "eval.max_new_tokens=8"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, synth_dir) -> Path:
    from prada.train.loop import train

    data = tmp_path_factory.mktemp("data") / "synth"
    shutil.copytree(synth_dir, data)
    return train(tiny_config(data, *STEPS), tmp_path_factory.mktemp("run") / "run", progress=False)


@pytest.fixture
def read_only(finished, tmp_path):
    """A copy of the run behind a read-only bind mount (skipped where mounting is not allowed)."""
    src, mnt = tmp_path / "src", tmp_path / "ro"
    shutil.copytree(finished, src)
    mnt.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)])
        ok = False
    if not ok:
        pytest.skip("no read-only bind mount here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])  # lazy: the loaded weights may still be mapped


def test_eval_out_elsewhere_works_on_a_read_only_run(read_only, tmp_path):
    from prada.cli import main

    before = snapshot(read_only)
    main(["eval", "--run", str(read_only), "--out", str(tmp_path / "out" / "e.json")])
    assert json.loads((tmp_path / "out" / "e.json").read_text())["datasets"]
    assert snapshot(read_only) == before


def test_eval_into_a_read_only_run_is_one_error_line(read_only, capsys):
    err = cli_error("eval", "--run", str(read_only), capsys=capsys)
    assert "--out" in err


@pytest.mark.parametrize("command", ["explain", "run"])
def test_permission_denied_is_one_error_line(tmp_path, capsys, monkeypatch, command):
    """A run folder of another user (EACCES, as a non-root user meets it): the error names the file."""
    import prada.experiment
    import prada.report.explain

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "run" / "explain"))

    monkeypatch.setattr(prada.report.explain, "explain_run", denied)
    monkeypatch.setattr(prada.experiment, "run_experiment", denied)
    argv = ["explain", "--run", str(tmp_path / "run")] if command == "explain" else ["run"]
    err = cli_error(*argv, capsys=capsys)
    assert "Permission denied" in err and str(tmp_path / "run" / "explain") in err and "writable" in err
