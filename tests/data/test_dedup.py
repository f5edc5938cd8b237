"""Exact and near-duplicate detection between test and train questions."""

from __future__ import annotations

from prada.data.dedup import find_overlaps, normalise_question
from prada.data.schema import Example


def ex(q: str, a: str = "5", t: str = "number") -> Example:
    return Example(question=q, answer=a, answer_type=t)


def test_normalisation_ignores_case_punctuation_and_spacing():
    assert normalise_question("Sara has 31  red balloons.\n") == normalise_question("sara has 31 red balloons")


def test_exact_and_near_duplicates_are_found_and_other_problems_are_not():
    train = [
        ex("Sara has 31 red and 15 green balloons. How many balloons does she have in all?", "46"),
        ex("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
    ]
    test = [
        ex("sara has 31 red and 15 green balloons . how many balloons does she have in all ?", "46"),  # exact
        ex("Sara has 31 red and 15 green balloons. How many balloons does Sara have in total?", "46"),  # near
        ex("Sara has 32 red and 15 green balloons. How many balloons does she have in all?", "47"),  # other numbers
        ex("Tom has 3 apples and buys 4 more. How many apples does he have?", "7", "choice"),  # exact, any type
        ex("Alice swaps the red ball with Bob. Who has the red ball?", "A", "choice"),
    ]
    found = {o.test_index: o for o in find_overlaps(test, train)}
    assert sorted(found) == [0, 1, 3]
    assert found[0].exact and found[3].exact and not found[1].exact
    assert found[1].train_index == 0 and found[1].jaccard >= 0.8


def test_near_duplicates_of_letter_answers_are_not_matched():
    """Templated choice questions share nearly every token; only an exact text is the same problem."""
    train = [ex("Alice, Bob and Claire swap balls: first Alice and Bob, then Bob and Claire. Alice has", "A", "choice")]
    test = [ex("Alice, Bob and Claire swap balls: first Bob and Claire, then Alice and Bob. Alice has", "A", "choice")]
    assert find_overlaps(test, train) == []


def test_custom_test_file_overlapping_train_warns_with_names(tmp_path, caplog):
    import json

    from prada.config import DataConfig
    from prada.distill.dataset import load_distillation_set

    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    rationale = [{"text": "3 + 4 = 7.", "answer": "7", "correct": True, "teacher": "t"}]
    rows = [
        {
            "question": q,
            "answer": "7",
            "answer_type": "number",
            "domain": "arithmetic",
            "dataset": "mine",
            "id": "a1",
            "rationales": rationale,
        }
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.jsonl").write_text(json.dumps({**rows[0], "id": "t9", "rationales": []}) + "\n")
    cfg = DataConfig(
        benchmark="none", train_files=[str(tmp_path / "train.jsonl")], test_files=[str(tmp_path / "test.jsonl")]
    )
    with caplog.at_level("WARNING"):
        load_distillation_set(cfg)
    assert "1 of 1 test questions of mine also occur in a train split (t9 ~ mine/a1)" in caplog.text
