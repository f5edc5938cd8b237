"""The second outside attack (issue 25) on `prada export`: two exports to one --out (item 7), ENOSPC, an --out
that is a link, and a user's folder named like the old fixed temp folder (item 20)."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from reliability.harness import cli_error
from tiny import tiny_config

STEPS = ["train.max_steps=2", "train.save_every=0", "train.save_every_minutes=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synth_dir) -> dict[str, Path]:
    """Two finished tiny runs of different methods (ft-cot, prada)."""
    from prada.train.loop import train

    data = tmp_path_factory.mktemp("data") / "synth"
    shutil.copytree(synth_dir, data)
    root = tmp_path_factory.mktemp("runs")
    return {m: train(tiny_config(data, f"method={m}", *STEPS), root / m, progress=False) for m in ("ft-cot", "prada")}


def test_two_exports_to_one_out_never_mix(runs, tmp_path, monkeypatch):
    import prada.export as export
    from prada.errors import PradaError

    out = tmp_path / "shipped"
    real_card = export.model_card
    calls = []

    def card_then_other_export(*args, **kwargs):  # the ft-cot export runs start to end inside the prada one
        calls.append(1)
        if len(calls) == 1:
            export.export_run(runs["ft-cot"], out)
        return real_card(*args, **kwargs)

    monkeypatch.setattr(export, "model_card", card_then_other_export)
    with pytest.raises(PradaError, match="while this export ran"):
        export.export_run(runs["prada"], out)
    assert json.loads((out / "prada.json").read_text())["method"] == "ft-cot"
    assert "ft-cot" in (out / "README.md").read_text() and not (out / "prompt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]  # no temp folder left


def test_export_under_enospc_leaves_no_temp_files(runs, tmp_path, monkeypatch, capsys):
    import prada.export as export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "save_tokenizer", full)
    out = tmp_path / "shipped"
    err = cli_error("export", "--run", str(runs["prada"]), "--out", str(out), capsys=capsys)
    assert "No space left" in err
    assert list(tmp_path.iterdir()) == []


def test_export_out_a_link_is_refused_before_the_work(runs, tmp_path, monkeypatch, capsys):
    import prada.train.student as student

    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "shipped"
    link.symlink_to(target)
    monkeypatch.setattr(student, "load_student", lambda *a, **k: pytest.fail("the work started"))
    err = cli_error("export", "--run", str(runs["prada"]), "--out", str(link), capsys=capsys)
    assert "symbolic link" in err and list(target.iterdir()) == []


def test_export_keeps_a_users_folder_named_like_a_temp_folder(runs, tmp_path):
    from prada.export import export_run

    mine = tmp_path / ".shipped.export-tmp"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    export_run(runs["prada"], tmp_path / "shipped")
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shipped.export-tmp", "shipped"]
