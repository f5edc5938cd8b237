"""The student's text format (Fine-tune-CoT): input `{question} ###`, target ` {rationale} --> {answer}` + EOS.

This is the only place the format lives; the evaluator's extraction relies on the `-->` separator.
"""

from __future__ import annotations

from prada.answers import ANSWER_SEPARATOR
from prada.prompts import zeroshot_cot_prompt

PROMPT_SUFFIX = " ###"


def format_prompt(question: str) -> str:
    """Decoder-only input shown to the student, at training and at generation time."""
    return f"{question.strip()}{PROMPT_SUFFIX}"


def format_target(rationale: str, answer: str) -> str:
    """Text the student learns to produce after the prompt (EOS is appended by the tokenising code)."""
    # The answer is read after the first separator: one inside a rationale would make a student
    # that reproduces its target exactly score wrong, so it is escaped to "->".
    rationale = " ".join(rationale.split())
    while ANSWER_SEPARATOR in rationale:  # "--->" would leave a new "-->" after one pass
        rationale = rationale.replace(ANSWER_SEPARATOR, "->")
    return f" {rationale} {ANSWER_SEPARATOR} {answer.strip()}"


def format_answer_target(answer: str) -> str:
    """Answer-only target (the `answer-ft` baseline): the separator and the answer, no rationale."""
    return f" {ANSWER_SEPARATOR} {answer.strip()}"


def format_zeroshot_prompt(question: str) -> str:
    """Zero-shot-CoT prompt for an untrained student (the `zero-shot` baseline): its stage 1, prada/prompts.py."""
    return zeroshot_cot_prompt(question)


def format_input(question: str, style: str) -> str:
    """The prompt for a method's `prompt_style` (see methods/registry.py)."""
    return format_zeroshot_prompt(question) if style == "zeroshot_cot" else format_prompt(question)
