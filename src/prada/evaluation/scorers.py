"""Two scorers of a student output: prada's answer rules and a port of Fine-tune-CoT's evaluator.

`prada` (the default) is `extract.extract_answer` + `extract.is_correct`. `ftcot` re-implements the
rules of Fine-tune-CoT's `src/evaluation/evaluator.py` (itsnamgyu/reasoning-teacher, the "ft_cot_token"
template), so a table beside its published numbers is scored like for like. Both take the first
candidate after `-->` and the last one without it; where their candidates differ is listed in
docs/protocol.md ("Scorers"). Datasets outside Fine-tune-CoT's twelve are scored by their answer type
with the rule of the closest dataset (number: AddSub's float rule; choice: any capital letter of the
choices; yes_no: StrategyQA's; text: Last Letter Concatenation's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prada.answers import MAX_ANSWER_CHARS
from prada.distill.format import ANSWER_SEPARATOR
from prada.evaluation.extract import extract_answer, is_correct

SCORERS = ("prada", "ftcot")

# Fine-tune-CoT's dataset groups (its dataset keys equal ours)
_FLOAT_NUMBERS = ("addsub", "svamp", "single_eq")  # compared as floats within 1e-6
_STRING_NUMBERS = ("gsm8k", "multiarith")  # compared as strings after dropping commas
_LETTERS = {
    "aqua": "ABCDE",
    "commonsense_qa": "ABCDE",
    "date_understanding": "ABCDEF",
    "tracking_shuffled_objects": "ABC",
}
_YES_NO = ("strategy_qa", "coin_flip")
_CONCAT = ("last_letter_concatenation",)
_YES_NO_SPLIT = re.compile(r"[\"'\n.\s:,]")
_CONCAT_STRIP = re.compile(r"[\"'\n.\s]")
_FTCOT_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Score:
    prediction: str | None
    correct: bool


def _rule(dataset: str, answer_type: str, choices: list[str] | None) -> tuple[str, str]:
    """(kind, letters) of Fine-tune-CoT's rule for this dataset; other datasets by answer type."""
    if dataset in _FLOAT_NUMBERS or (dataset not in _STRING_NUMBERS and answer_type == "number"):
        return "float", ""
    if dataset in _STRING_NUMBERS:
        return "string_number", ""
    if dataset in _LETTERS:
        return "letters", _LETTERS[dataset]
    if dataset in _YES_NO or answer_type == "yes_no":
        return "yes_no", ""
    if dataset in _CONCAT or answer_type == "text":
        return "concat", ""
    return "letters", "".join(choices or "ABCDE")


def _ftcot_candidates(text: str, kind: str, letters: str) -> list[str]:
    if kind == "letters":
        if not letters:  # `choices: [""]`: no letter to find (and "[]" is not a regex)
            return []
        return re.findall(f"[{re.escape(letters)}]", text)  # any capital of the set, inside words too ("Alice" -> A)
    if kind in ("float", "string_number"):
        return _FTCOT_NUMBER.findall(text.replace(",", ""))
    if kind == "yes_no":
        return [w for w in _YES_NO_SPLIT.sub(" ", text.lower()).split(" ") if w in ("yes", "no")]
    return [_CONCAT_STRIP.sub("", text)]  # concat: the whole remaining text, quotes/periods/whitespace dropped


def score_ftcot(text: str, dataset: str, answer_type: str, gold: str, choices: list[str] | None = None) -> Score:
    """Fine-tune-CoT's evaluator on one output: first candidate after `-->`, else the last one anywhere."""
    kind, letters = _rule(dataset, answer_type, choices)
    at = text.find(ANSWER_SEPARATOR)
    start = at + len(ANSWER_SEPARATOR)  # read as much as prada's own rules read (MAX_ANSWER_CHARS)
    read = text[start : start + MAX_ANSWER_CHARS] if at != -1 else text[-MAX_ANSWER_CHARS:]
    found = _ftcot_candidates(read, kind, letters)
    prediction = (found[0] if at != -1 else found[-1]) if found else None
    if prediction is None:
        return Score(None, False)
    gold = gold.replace(",", "") if kind in ("float", "string_number") else gold
    if kind == "float":
        try:
            return Score(prediction, abs(float(prediction) - float(gold)) <= 1e-6)
        except ValueError:
            return Score(prediction, False)
    if kind == "yes_no":
        gold = gold.lower()
    return Score(prediction, prediction == gold)


def score_output(
    text: str, scorer: str, dataset: str, answer_type: str, gold: str, choices: list[str] | None = None
) -> Score:
    """The prediction read from `text` and whether it is right, under `scorer` (prada | ftcot)."""
    if scorer == "ftcot":
        return score_ftcot(text, dataset, answer_type, gold, choices)
    if scorer != "prada":
        raise ValueError(f"unknown scorer {scorer!r}; choose one of {', '.join(SCORERS)}")
    prediction = extract_answer(text, answer_type, choices)
    return Score(prediction, is_correct(prediction, gold, answer_type))
