"""read_jsonl_tolerant: a torn last line is dropped quietly; a damaged line elsewhere is skipped with a warning."""

from __future__ import annotations

from prada.io import read_jsonl_tolerant


def test_torn_last_line_is_quiet_and_a_middle_one_is_named(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n{"a": ')
    with caplog.at_level("WARNING"):
        rows = read_jsonl_tolerant(path)
    assert rows == [{"a": 1}, {"a": 3}]
    assert f"{path}:2: damaged line skipped" in caplog.text
    assert ":4:" not in caplog.text  # the torn last line: the expected trace of a kill
