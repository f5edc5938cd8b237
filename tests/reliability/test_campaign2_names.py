"""The second outside attack (issue 25): PRADA_CACHE values (item 13) and names that are too long in bytes or carry
bidirectional overrides (item 14). Each is the right folder or one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability.harness import cli_error
from tiny import TINY_YAML


def test_an_empty_prada_cache_is_the_default_not_the_working_folder(monkeypatch, tmp_path):
    from prada.io import cache_root

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PRADA_CACHE", "")
    assert cache_root() == tmp_path / ".cache" / "prada"


def test_a_tilde_in_prada_cache_is_the_home_folder(monkeypatch, tmp_path):
    from prada.io import cache_root

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PRADA_CACHE", "~/prada-cache")
    monkeypatch.chdir(tmp_path)
    assert cache_root() == tmp_path / "prada-cache"
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize("where", ["file", "/proc/self/prada", "/proc"])
def test_a_prada_cache_that_is_no_writable_folder_is_one_error_line(monkeypatch, tmp_path, capsys, where):
    target = tmp_path / "a-file" if where == "file" else Path(where)
    if where == "file":
        target.write_text("mine")
    monkeypatch.setenv("PRADA_CACHE", str(target))
    err = cli_error("train", "--config", str(TINY_YAML), "--out", str(tmp_path / "run"), capsys=capsys)
    assert "PRADA_CACHE" in err
    assert where != "file" or target.read_text() == "mine"


@pytest.mark.parametrize(
    "name, words",
    [("😀" * 70, "bytes"), ("ab\u202ecd", "bidirectional"), ("x\u2066y", "bidirectional"), ("a\x85b", "control")],
)
def test_names_are_limited_in_bytes_and_refuse_bidi_overrides(name, words):
    from prada.data.registry import name_problem

    assert words in (name_problem(name) or "")


def test_an_experiment_name_of_70_emoji_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = cli_error("run", "name=" + "😀" * 70, f"out_dir={tmp_path}", capsys=capsys)
    assert "bytes" in err and not any(tmp_path.iterdir())
