"""The student's text format (Fine-tune-CoT): input `{question} ###`, target ` {rationale} --> {answer}` + EOS.

This is the only place the format lives; the evaluator's extraction relies on the `-->` separator.
"""

from __future__ import annotations

PROMPT_SUFFIX = " ###"
ANSWER_SEPARATOR = "-->"


def format_prompt(question: str) -> str:
    """Decoder-only input shown to the student, at training and at generation time."""
    return f"{question.strip()}{PROMPT_SUFFIX}"


def format_target(rationale: str, answer: str) -> str:
    """Text the student learns to produce after the prompt (EOS is appended by the tokenising code)."""
    rationale = " ".join(rationale.split())
    return f" {rationale} {ANSWER_SEPARATOR} {answer.strip()}"
