"""The two scorers: prada's rules and the port of Fine-tune-CoT's evaluator, and where they differ."""

from __future__ import annotations

import pytest

from prada.evaluation.scorers import score_ftcot, score_output


@pytest.mark.parametrize(
    "text, dataset, answer_type, gold, prada, ftcot",
    [
        # both: first candidate after -->
        (" 3 + 4 = 7 --> 7", "addsub", "number", "7", True, True),
        # without -->: both take the last candidate
        (" 3 + 4 = 7", "addsub", "number", "7", True, True),
        # Fine-tune-CoT reads capitals inside words: "Alice" gives A before the real answer (C)
        (" --> Alice has (C)", "tracking_shuffled_objects", "choice", "C", True, False),
        # MultiArith compares strings in Fine-tune-CoT: 8.0 is not 8
        (" --> 8.0", "multiarith", "number", "8", True, False),
        # AddSub compares floats in both
        (" --> 8.0", "addsub", "number", "8", True, True),
        # fractions: prada reads 3/4 = 0.75, Fine-tune-CoT reads 3
        (" --> 3/4", "single_eq", "number", "0.75", True, False),
        # yes/no glued to punctuation that Fine-tune-CoT does not split on
        (" --> (yes)", "strategy_qa", "yes_no", "yes", True, False),
        # last letters: Fine-tune-CoT takes the whole rest of the text
        (' --> "ny". Done', "last_letter_concatenation", "text", "ny", True, False),
        (' --> "ny"', "last_letter_concatenation", "text", "ny", True, True),
    ],
)
def test_scorers_agree_and_differ_where_documented(text, dataset, answer_type, gold, prada, ftcot):
    choices = ["A", "B", "C"] if answer_type == "choice" else None
    assert score_output(text, "prada", dataset, answer_type, gold, choices).correct is prada
    assert score_output(text, "ftcot", dataset, answer_type, gold, choices).correct is ftcot


def test_ftcot_without_a_candidate_is_wrong_and_has_no_prediction():
    score = score_ftcot(" I do not know", "gsm8k", "number", "5")
    assert score.prediction is None and not score.correct


def test_unknown_scorer_is_an_error():
    with pytest.raises(ValueError):
        score_output("x", "nope", "addsub", "number", "1")
