"""The ftcot12 build from the local reference copies: sizes, teacher accuracy, log matching."""

from __future__ import annotations

import json

import pytest

from prada.data.ftcot12 import FILES, SOURCES, build_ftcot12, parse_log, seeded_split
from prada.data.registry import FTCOT12
from prada.data.schema import read_examples
from prada.errors import DataError
from prada.evaluation.extract import is_correct

# Fine-tune-CoT's split sizes for the nine small datasets; 70/30 of the evaluation file for the rest.
SIZES = {
    "addsub": (276, 119),
    "coin_flip": (350, 150),
    "date_understanding": (258, 111),
    "last_letter_concatenation": (350, 150),
    "multiarith": (420, 180),
    "single_eq": (356, 152),
    "strategy_qa": (1603, 687),
    "svamp": (700, 300),
    "tracking_shuffled_objects": (525, 225),
    "gsm8k": (923, 396),
    "aqua": (178, 76),
    "commonsense_qa": (855, 366),
}
# Accuracy each log prints at its end (its own scoring, pred_after == GT).
LOG_ACCURACY = {
    "addsub": 69.62,
    "aqua": 33.46,
    "coin_flip": 91.40,
    "commonsense_qa": 64.62,
    "date_understanding": 67.48,
    "gsm8k": 40.71,
    "last_letter_concatenation": 57.60,
    "multiarith": 78.67,
    "tracking_shuffled_objects": 52.40,
    "single_eq": 77.95,
    "strategy_qa": 54.76,
    "svamp": 62.10,
}
# Test questions that occur in a train split (exactly, or as a numeric near duplicate with the same
# numbers and answer), removed by the build: AddSub and SingleEq share MAWPS problems.
REMOVED = {"single_eq": 42, "addsub": 37, "multiarith": 5, "strategy_qa": 1}
# Our extraction reads fractions ("9/10") and compares numbers as floats, which the log's string
# comparison missed; everywhere else it agrees with the log within a point.
ABOVE_LOG = {"single_eq": 4.0, "addsub": 4.5}


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ftcot12")
    summary = build_ftcot12(out, source=str(shared_data), progress=False)
    return out, summary


def test_writes_all_twelve_with_summary(built):
    out, summary = built
    assert set(summary["datasets"]) == set(FTCOT12)
    assert json.loads((out / "summary.json").read_text()) == summary
    for key, row in summary["datasets"].items():
        assert {
            "domain",
            "n_train",
            "n_test",
            "n_train_with_correct_rationale",
            "teacher_accuracy",
            "n_unmatched",
        } <= set(row)
        assert row["domain"] == FTCOT12[key].domain
        # Fine-tune-CoT's split sizes, less the test questions that occur in some train split
        assert (row["n_train"], row["n_test"] + row["n_test_removed"]) == SIZES[key], key
        assert row["n_test_removed"] == REMOVED.get(key, 0), key
        assert row["n_unmatched"] == 0, key
        assert 0 < row["n_train_with_correct_rationale"] <= row["n_train"]


@pytest.mark.parametrize("key", sorted(LOG_ACCURACY))
def test_teacher_accuracy_matches_log(built, key):
    row = built[1]["datasets"][key]
    low = LOG_ACCURACY[key] - 1.0
    high = LOG_ACCURACY[key] + ABOVE_LOG.get(key, 1.0)
    assert low <= row["teacher_accuracy"] <= high, (key, row["teacher_accuracy"])
    assert row["log_accuracy"] == pytest.approx(LOG_ACCURACY[key], abs=0.01)


def test_items_are_valid_and_carry_matched_rationales(built, shared_data):
    out, summary = built
    for key in FTCOT12:
        train = read_examples(out / key / "train.jsonl")
        test = read_examples(out / key / "test.jsonl")
        ids = [e.id for e in train + test]
        assert len(set(ids)) == len(ids)
        n_correct = 0
        for e in train + test:
            assert e.dataset == key and e.answer_type == FTCOT12[key].answer_type
            assert (e.choices is not None) == (e.answer_type == "choice")
            if e.choices:
                assert e.answer in e.choices
            assert len(e.rationales) == 1 and e.rationales[0].teacher == "text-davinci-002/zero-shot-cot"
            n_correct += e.rationales[0].correct
        if not summary["datasets"][key]["n_test_removed"]:  # teacher accuracy counts every imported rationale
            assert round(100 * n_correct / len(ids), 2) == summary["datasets"][key]["teacher_accuracy"]
        assert (
            sum(any(r.correct for r in e.rationales) for e in train)
            == summary["datasets"][key]["n_train_with_correct_rationale"]
        )


@pytest.mark.parametrize("key", sorted(FTCOT12))
def test_questions_and_golds_equal_the_log(built, shared_data, key):
    """Every built question is a log `Q:` text, and the log scored it against the same gold."""
    out, _ = built
    records = parse_log((shared_data / SOURCES[key].log).read_text(encoding="utf-8"))
    by_question: dict[str, list] = {}
    for r in records:
        by_question.setdefault(r.question, []).append(r)
    items = read_examples(out / key / "train.jsonl") + read_examples(out / key / "test.jsonl")
    for e in items:
        recs = by_question[e.question]  # exact text, as Zero-shot-CoT built it
        assert any(is_correct(e.answer, r.gt, e.answer_type) for r in recs), e.id  # gsm8k: "40,000" -> "40000"
        assert any(r.rationale == e.rationales[0].text for r in recs), e.id
    # duplicates were assigned one to one: every record used exactly once (removed test questions aside)
    removed = built[1]["datasets"][key]["n_test_removed"]
    assert len(items) + removed == len(records)
    if not removed:
        assert sorted(e.rationales[0].text for e in items) == sorted(r.rationale for r in records)


def test_date_letters_follow_the_log(built):
    out, _ = built
    e = next(x for x in read_examples(out / "date_understanding" / "train.jsonl") if x.id == "date_understanding-1")
    # the raw file lists the right date (05/02/2021) first; the log lettered it (C)
    assert "(C) 05/02/2021" in e.question and e.answer == "C"


def test_seeded_split_is_documented_and_stable():
    s = seeded_split(1319)
    assert (len(s["train"]), len(s["test"])) == (923, 396)
    assert s == seeded_split(1319) and not set(s["train"]) & set(s["test"])
    assert sorted(s["train"] + s["test"]) == list(range(1319))


def test_every_source_file_is_pinned():
    for src in SOURCES.values():
        for rel in (src.raw, src.log) + ((src.split,) if src.split else ()):
            assert len(FILES[rel]) == 64


def test_malformed_log_names_file_and_line():
    text = (
        "Namespace(direct_answer_trigger='\\nTherefore, the answer (arabic numerals) is', x=1)\n"
        "*************************\n1st data\n1_th_sampling\nQ: What is 1+1?\nA: Let's think step by step. 1+1=2.\n"
        "Therefore, the answer (arabic numerals) is 2.\npred_before : 2.\npred_after : 2\nGT : 2\n"
        "*************************\n*************************\n2st data\n1_th_sampling\nQ: broken block\n"
    )
    with pytest.raises(DataError) as err:
        parse_log(text, "x.log")
    assert str(err.value).startswith("x.log:13:")
    good = parse_log(text.split("*************************\n2st")[0], "x.log")
    assert good[0].question == "What is 1+1?" and good[0].rationale == "1+1=2." and good[0].answer_text == " 2."


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="source folder not found"):
        build_ftcot12(tmp_path / "out", source=str(tmp_path / "nope"), progress=False)


def test_no_test_question_occurs_in_any_train_split(built):
    """The leak check: no normalised test question of any dataset is a train question of any dataset."""
    from prada.data.dedup import normalise_question

    out, _ = built
    train = {normalise_question(e.question) for k in FTCOT12 for e in read_examples(out / k / "train.jsonl")}
    leaked = [
        e.id for k in FTCOT12 for e in read_examples(out / k / "test.jsonl") if normalise_question(e.question) in train
    ]
    assert leaked == []


def test_partial_build_is_deduplicated_against_all_twelve(shared_data, tmp_path):
    """addsub alone still loses the questions that single_eq trains on."""
    summary = build_ftcot12(tmp_path, source=str(shared_data), progress=False, datasets=["addsub"])
    assert summary["datasets"]["addsub"]["n_test_removed"] == REMOVED["addsub"]
    assert summary["datasets"]["addsub"]["n_test_removed_by_train_of"] == {"single_eq": REMOVED["addsub"]}
