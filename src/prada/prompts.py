"""The Zero-shot-CoT wording (Kojima et al., 2022), in one place for the three stages that use it.

data/ftcot12.py parses the published Zero-shot-CoT logs by it, teacher/ asks a teacher with it
(stage 1, then stage 2 with an answer trigger per answer type), and the `zero-shot` baseline
prompts the untrained student with stage 1 (distill/format.py).
"""

from __future__ import annotations

from prada.answers import DEFAULT_CHOICES

COT_TRIGGER = "Let's think step by step."


def zeroshot_cot_prompt(question: str) -> str:
    """Stage 1: `Q: {question}\\nA: Let's think step by step.`"""
    return f"Q: {question.strip()}\nA: {COT_TRIGGER}"


def answer_trigger(answer_type: str, choices: list[str] | None = None) -> str:
    """Stage 2's trigger after the rationale; the choice wording names the item's own letters."""
    if answer_type == "number":
        return "\nTherefore, the answer (arabic numerals) is"
    if answer_type == "choice":
        letters = choices or DEFAULT_CHOICES
        return f"\nTherefore, among {letters[0]} through {letters[-1]}, the answer is"
    if answer_type == "yes_no":
        return "\nTherefore, the answer (Yes or No) is"
    return "\nTherefore, the answer is"
