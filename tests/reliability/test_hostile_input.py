"""Hostile and unlucky input (issue 15): names that escape their folder, inputs that gave tracebacks, YAML bombs,
rationales that carry the answer separator. Every one is a clear `prada: error:` line or a typed error, never a
traceback and never a file written or removed outside the experiment's folder."""

from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path

import pytest
import yaml
from reliability.harness import VALID, cli_error

from prada.config import load_config
from prada.data.schema import read_examples
from prada.errors import ConfigError, DataError, PradaError

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, *objs: dict | str) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


# --- item 2: names that would leave their folder ----------------------------------------------------------

BAD_NAMES = ["x/../../../victim", "..", "../victim", ".hidden", "a\\b", "a/b", "tab\there"]


@pytest.mark.parametrize("field", ["domain", "dataset"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_domain_and_dataset_names_must_be_plain(tmp_path, field, name):
    path = _write(tmp_path / "train.jsonl", {**VALID, field: name})
    with pytest.raises(DataError, match=f"{field}") as ei:
        read_examples(path)
    assert f"{path}:1:" in str(ei.value)


@pytest.mark.parametrize("key", ["data.target_domains", "data.source_domains", "data.datasets"])
def test_config_names_must_be_plain(key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [f"{key}=[x/../../../victim]"])


def test_experiment_fold_names_must_be_plain(tmp_path):
    from prada.experiment import load_experiment

    for over in (["protocol=explicit", "target_domains=[../../victim]"], ["folds=[.x]"], ["name=..\\x"]):
        with pytest.raises(ConfigError):
            load_experiment(REPO / "configs" / "tiny-run.yaml", [f"out_dir={tmp_path}", *over])


def test_a_rerun_never_removes_a_folder_prada_did_not_make(tmp_path, monkeypatch):
    # The campaign's rerun rmtree'd a folder at the run's path holding a user's file. Now nothing is removed:
    # a run folder without prada's config.yaml is refused, and one with it is trained over in place.
    import prada.train.loop as loop
    from prada.experiment import execute_run, load_experiment, plan_runs

    exp = load_experiment(REPO / "configs" / "tiny-run.yaml", [f"out_dir={tmp_path}"])
    run = next(r for r in plan_runs(exp, tmp_path / exp.name) if r.trains)
    run.dir.mkdir(parents=True)
    (run.dir / "thesis.tex").write_text("a user's file")
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("trained into a folder prada did not make"))
    with pytest.raises(PradaError, match="did not write"):
        execute_run(run, None, False, lambda _s: None)
    assert (run.dir / "thesis.tex").read_text() == "a user's file"


def test_a_traversing_domain_in_the_data_never_reaches_the_file_system(tmp_path, capsys):
    victim = tmp_path / "victim__seed0"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    data = tmp_path / "data"
    for ds, dom in (("a", "arithmetic"), ("b", f"x/../../../{victim.name.split('__')[0]}")):
        (data / ds).mkdir(parents=True)
        ex = {**VALID, "dataset": ds, "domain": dom, "id": f"{ds}-1"}
        _write(data / ds / "train.jsonl", ex)
        _write(data / ds / "test.jsonl", ex)
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        yaml.safe_dump(
            {
                "name": "e",
                "out_dir": str(tmp_path / "out"),
                "methods": ["ft-cot"],
                "base": {"data": {"benchmark": "none", "data_dir": str(data)}, "student": {"model": "tiny-random"}},
            }
        )
    )
    err = cli_error("run", "--config", str(exp), capsys=capsys)
    assert "domain" in err
    assert (victim / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "exp.yaml",
        "victim__seed0",
    ]


# --- item 9: inputs that gave tracebacks -----------------------------------------------------------------


def test_lone_surrogate_in_a_question_is_a_data_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(VALID).replace("What is", "What \\ud800 is") + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="question"):
        read_examples(path)
    path.write_text(json.dumps(VALID).replace("2 + 3 = 5.", "2 + 3 = 5.\\udfff") + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rationales\[0\]\.text"):
        read_examples(path)


def test_a_5000_digit_integer_anywhere_in_a_line_is_a_data_error(tmp_path):
    path = _write(tmp_path / "t.jsonl", json.dumps({**VALID})[:-1] + ', "extra": ' + "9" * 5000 + "}")
    with pytest.raises(DataError, match=f"{path}:1:"):
        read_examples(path)


def test_tolerant_readers_survive_huge_integers_deep_nesting_and_non_objects(tmp_path):
    from prada.io import read_jsonl_tolerant

    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n' + "9" * 5000 + "\n" + "[" * 100_000 + "\n[1, 2]\n" + '"text"\n{"step": 2}\n')
    assert read_jsonl_tolerant(path) == [{"step": 1}, {"step": 2}]


def test_damaged_teacher_cache_lines_are_skipped(tmp_path):
    from prada.teacher.cache import TeacherCache

    path = tmp_path / "t.jsonl"
    path.write_text('{"key": "a", "text": "x"}\n' + "9" * 5000 + "\n" + "[" * 100_000 + "\n" + '{"key": "b"}\n')
    with TeacherCache(path) as cache:
        assert sorted(cache.records) == ["a", "b"]


def test_run_config_naming_a_folder_is_one_error_line(tmp_path, capsys):
    assert "experiment config" in cli_error("run", "--config", str(tmp_path), capsys=capsys)


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: &a [*a]\n", "recursive"),  # refers to itself
        ("base: &b {train: *b}\n", "recursive"),
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", "YAML"),  # deeper than the YAML parser's stack
        ("base: {x: " + "{a: " * 60 + "1" + "}" * 60 + "}\n", "deeper"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
            + "name: *i\n",
            "more than",
        ),  # a billion laughs: 10**9 values from 10 lines
    ],
)
@pytest.mark.parametrize("command", ["run", "train"])
def test_recursive_deep_and_alias_bomb_yaml_is_one_error_line_at_once(tmp_path, capsys, text, words, command):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    t0 = time.monotonic()
    argv = ["run", "--config", str(path)] if command == "run" else ["train", "--config", str(path), "--out", "R"]
    err = cli_error(*argv, capsys=capsys)
    assert words in err and str(path) in err
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("value", ["1e23", "1.0e+23", "-1", str(2**32)])
def test_a_seed_out_of_range_is_a_config_error(value):
    with pytest.raises(ConfigError, match="seed"):
        load_config(None, [f"seed={value}"])


def test_experiment_seeds_out_of_range_are_a_config_error(tmp_path):
    from prada.experiment import load_experiment

    with pytest.raises(ConfigError, match="seed"):
        load_experiment(REPO / "configs" / "tiny-run.yaml", [f"out_dir={tmp_path}", "seeds=[1e23]"])


def test_no_space_left_on_device_is_one_error_line(tmp_path, capsys, monkeypatch):
    import prada.io

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(prada.io, "atomic_write_bytes", full)
    err = cli_error("data", "synth", "--out", str(tmp_path / "d"), "--n-train", "4", "--n-test", "2", capsys=capsys)
    assert "No space left on device" in err and "free" in err


# --- item 12: a rationale that carries the answer separator -----------------------------------------------


@pytest.mark.parametrize("rationale", ["We get 3 --> then 4 + 1 = 5.", "a ---> 7 and 5", "x-->-->9 so 5"])
def test_a_student_that_reproduces_its_target_scores_right_even_if_the_rationale_has_the_separator(rationale):
    from prada.distill.format import format_target
    from prada.evaluation.extract import extract_answer, is_correct

    target = format_target(rationale, "5")
    assert target.count("-->") == 1
    assert is_correct(extract_answer(target, "number"), "5", "number"), target


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
