"""Gold answers that no prediction could ever equal are data mistakes: one error naming file:line, or a
documented normalisation (prada.answers.GOLD_RULES)."""

import json
import os
import subprocess
import sys

import pytest

from prada.answers import GOLD_RULES
from prada.data.schema import read_examples
from prada.errors import DataError


def _file(tmp_path, *rows: dict):
    path = tmp_path / "toy.jsonl"
    base = {"question": "q?", "dataset": "toy"}
    path.write_text("".join(json.dumps({**base, "id": str(i), **r}) + "\n" for i, r in enumerate(rows)))
    return path


def test_a_number_question_with_a_non_number_gold_is_an_error_naming_file_and_line(tmp_path):
    path = _file(tmp_path, {"answer": "12", "answer_type": "number"}, {"answer": "Yes", "answer_type": "number"})
    with pytest.raises(DataError, match=rf"{path}:2: field 'answer': 'Yes' is not a number"):
        read_examples(path)
    ok = _file(tmp_path, *({"answer": a, "answer_type": "number"} for a in ["1,234", "-3", "0.5", "$14.00", "3/4"]))
    assert [e.answer for e in read_examples(ok)] == ["1,234", "-3", "0.5", "$14.00", "3/4"]  # kept as written


def test_a_parenthesised_choice_gold_is_normalised_and_a_letter_outside_the_choices_is_an_error(tmp_path):
    path = _file(
        tmp_path,
        {"answer": "(B)", "answer_type": "choice"},
        {"answer": " (c) ", "answer_type": "choice", "choices": ["a", "b", "c"]},
        {"answer": "F", "answer_type": "choice", "choices": list("ABCDEF")},
    )
    assert [e.answer for e in read_examples(path)] == ["B", "c", "F"]
    bad = _file(tmp_path, {"answer": "B", "answer_type": "choice"}, {"answer": "F", "answer_type": "choice"})
    with pytest.raises(DataError, match=rf"{bad}:2: field 'answer': 'F' is not one of the default choices"):
        read_examples(bad)
    bad = _file(tmp_path, {"answer": "(B) Paris", "answer_type": "choice", "choices": ["A", "B"]})
    with pytest.raises(DataError, match=rf"{bad}:1: field 'answer': '\(B\) Paris' is not one of the example's"):
        read_examples(bad)


def test_a_gsm8k_style_answer_column_is_normalised_to_the_final_answer(tmp_path):
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    path = _file(
        tmp_path, {"answer": solution, "answer_type": "number"}, {"answer": "So 7. #### 7", "answer_type": "number"}
    )
    assert [e.answer for e in read_examples(path)] == ["72", "7"]
    assert "####" in GOLD_RULES  # documented
    bad = _file(tmp_path, {"answer": "so it is #### ", "answer_type": "number"})
    with pytest.raises(DataError, match=rf"{bad}:1: field 'answer': .*nothing after '####'"):
        read_examples(bad)


def test_a_yes_no_gold_is_yes_or_no(tmp_path):
    path = _file(tmp_path, {"answer": "Yes.", "answer_type": "yes_no"}, {"answer": "NO", "answer_type": "yes_no"})
    assert [e.answer for e in read_examples(path)] == ["yes", "no"]
    bad = _file(tmp_path, {"answer": "yes", "answer_type": "yes_no"}, {"answer": "True", "answer_type": "yes_no"})
    with pytest.raises(DataError, match=rf"{bad}:2: field 'answer': 'True' is not yes or no"):
        read_examples(bad)


def test_cli_names_the_bad_gold_in_one_error_line(tmp_path):
    data = tmp_path / "data"
    (data / "toy").mkdir(parents=True)
    path = _file(data / "toy", {"answer": "5", "answer_type": "number"}, {"answer": "Yes", "answer_type": "number"})
    path.rename(data / "toy" / "train.jsonl")
    r = subprocess.run(
        [sys.executable, "-m", "prada", "teach", "--data", str(data), "--teacher", "openai:nobody"],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"prada: error: {data / 'toy' / 'train.jsonl'}:2: field 'answer': 'Yes' is not a number "
                      "(answer_type number); give the number, e.g. 7"]  # fmt: skip
