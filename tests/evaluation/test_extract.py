"""Answer extraction and scoring: a table of student-style outputs and of real teacher outputs.

The `TEACHER` cases are stage-2 answer texts copied verbatim from the Zero-shot-CoT logs in
../shared/data/zero_shot_cot/log (text-davinci-002), with the log's gold answer.
"""

from __future__ import annotations

import pytest

from prada.evaluation.extract import canonical_number, extract_answer, extract_teacher_answer, is_correct

CHOICES_AE = ["A", "B", "C", "D", "E"]

# (student output, answer_type, choices, expected extraction)
STUDENT = [
    # number: first candidate after -->, canonical form
    ("She has 5 + 3 = 8 apples. --> 8", "number", None, "8"),
    ("Total is 1,200 dollars --> $1,234.50 in all", "number", None, "1234.5"),
    ("x --> -3 degrees", "number", None, "-3"),
    ("x --> 3/4 of the cake", "number", None, "0.75"),
    ("x --> 12.", "number", None, "12"),
    ("x --> 0.50", "number", None, "0.5"),
    ("x --> 7 then 9", "number", None, "7"),
    ("5-3 is 2 --> 2", "number", None, "2"),
    # number without separator: last candidate
    ("She has 5 + 3 = 8 apples, then eats 2, so 6", "number", None, "6"),
    ("He pays $1,000 and gets 20 back", "number", None, "20"),
    ("no digits here --> none", "number", None, None),
    ("no digits at all", "number", None, None),
    # choice
    ("The answer is (B). --> (B)", "choice", None, "B"),
    ("... --> B) 42", "choice", None, "B"),
    ("... --> C", "choice", None, "C"),
    ("... --> A", "choice", None, "A"),
    ("... --> F", "choice", ["A", "B", "C", "D", "E", "F"], "F"),
    ("... --> F", "choice", None, None),  # F is not among the default A-E
    ("... --> D", "choice", ["A", "B", "C"], None),
    ("A person would pick (D) here, not (B)", "choice", None, "B"),  # no --> : last candidate
    ("... --> A person would pick C", "choice", None, "C"),  # "A person": the article, skipped
    ("... --> Catching fish", "choice", None, None),  # letters inside words do not count
    # yes/no
    ("It is not. --> No", "yes_no", None, "no"),
    ("--> YES.", "yes_no", None, "yes"),
    ("Yes, but later it is no", "yes_no", None, "no"),
    ("--> nobody knows", "yes_no", None, None),
    # text (last letter concatenation)
    ('The last letters are a, b. --> "ab".', "text", None, "ab"),
    ("x --> naoa.", "text", None, "naoa"),
    ("x -->  naoa \nmore", "text", None, "naoa"),
    ('The letters give "yajo" in the end.', "text", None, "yajo"),
    ("so the answer is yajo.", "text", None, "yajo"),
    ("", "text", None, None),
]


@pytest.mark.parametrize("text,answer_type,choices,expected", STUDENT)
def test_extract_answer(text, answer_type, choices, expected):
    assert extract_answer(text, answer_type, choices) == expected


# (answer text after "Therefore, ... is", answer_type, choices, expected extraction, log's gold, correct?)
TEACHER = [
    # gsm8k
    (" $40,000.", "number", None, "40000", "40,000", True),
    (
        ": \n\nBob will need to spend $14.00 to buy enough popsicles to build his project.",
        "number",
        None,
        "14",
        "14",
        True,
    ),
    # SingleEq / AddSub: fractions and leading-dot decimals, which the log's own scoring missed
    (" 9/10.", "number", None, "0.9", "0.9", True),
    (" .5", "number", None, "0.5", "0.5", True),
    (" twenty-six point one six.", "number", None, None, "36.78", False),
    (" 2.", "number", None, "2", "2", True),
    # AQuA
    (" closest to D, 35%. \n", "choice", CHOICES_AE, "D", "A", False),
    (" 20cm.", "choice", CHOICES_AE, None, "B", False),
    # CommonsenseQA
    (" A or E.", "choice", CHOICES_AE, "A", "A", True),
    (" (A) and (E).", "choice", CHOICES_AE, "A", "B", False),
    (" Catching fish.", "choice", CHOICES_AE, None, "C", False),
    # Date Understanding (A-F) and shuffled objects (A-C)
    (" (F).", "choice", ["A", "B", "C", "D", "E", "F"], "F", "E", False),
    (" A: green ball.", "choice", ["A", "B", "C"], "A", "B", False),
    # StrategyQA / coin flip
    (" NO.", "yes_no", None, "no", "no", True),
    (" inconclusive.", "yes_no", None, None, "yes", False),
    (": It depends", "yes_no", None, None, "no", False),
    (" YES, the coin is still heads up.", "yes_no", None, "yes", "yes", True),
    # last letter concatenation
    (' "n a o a".', "text", None, "n a o a", "naoa", True),
    (' "aylo."', "text", None, "aylo", "aylo", True),
]


@pytest.mark.parametrize("answer_text,answer_type,choices,expected,gold,correct", TEACHER)
def test_extract_teacher_answer_real_outputs(answer_text, answer_type, choices, expected, gold, correct):
    pred = extract_teacher_answer(answer_text, answer_type, choices)
    assert pred == expected
    assert is_correct(pred, gold, answer_type) is correct


def test_teacher_takes_first_candidate_student_without_separator_takes_last():
    text = " 12. Then 15 more gives 27"
    assert extract_teacher_answer(text, "number") == "12"
    assert extract_answer(text, "number") == "27"
    assert extract_answer("reasoning 3 --> 12. Then 15", "number") == "12"


@pytest.mark.parametrize(
    "pred,gold,answer_type,expected",
    [
        ("0.6666666666666667", "0.6666666666666666", "number", True),
        ("1234.5", "1,234.50", "number", True),
        ("14", "14.00", "number", True),
        ("3", "3.001", "number", False),
        ("-2", "2", "number", False),
        ("abc", "2", "number", False),
        (None, "2", "number", False),
        (" b ", "B", "choice", True),
        ("C", "B", "choice", False),
        ("YES", "yes", "yes_no", True),
        ("n a o a", "NAOA", "text", True),
        ("nao", "naoa", "text", False),
    ],
)
def test_is_correct(pred, gold, answer_type, expected):
    assert is_correct(pred, gold, answer_type) is expected


@pytest.mark.parametrize(
    "text,expected",
    [("1,234.50", "1234.5"), ("$1,200", "1200"), ("-3", "-3"), ("6/3", "2"), ("007", "7"), ("-0", "0"), ("x", None)],
)
def test_canonical_number(text, expected):
    assert canonical_number(text) == expected


def test_never_evaluates_model_output():
    # an expression is read as numbers, never computed
    assert extract_answer("--> __import__('os').system('true') or 2+3", "number") == "2"
    with pytest.raises(ValueError, match="answer_type"):
        extract_answer("--> 1", "banana")
