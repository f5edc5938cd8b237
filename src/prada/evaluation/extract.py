"""The answer rules, as evaluation/ has always imported them; they live in prada/answers.py (below every stage)."""

from prada.answers import (  # noqa: F401
    DEFAULT_CHOICES,
    canonical_number,
    extract_answer,
    extract_teacher_answer,
    is_correct,
)
