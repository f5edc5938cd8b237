"""The one record type that flows between stages, and its JSONL reader with file:line errors."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prada.answers import normalise_gold
from prada.data.registry import ANSWER_TYPES, name_problem
from prada.errors import DataError
from prada.io import atomic_write_jsonl, iter_jsonl


@dataclass
class Rationale:
    """One teacher output for a question: its reasoning text and the answer extracted from it."""

    text: str
    answer: str
    correct: bool
    teacher: str


@dataclass
class Example:
    """One question with its gold answer; training items also carry teacher rationales."""

    question: str
    answer: str
    answer_type: str
    domain: str = "custom"
    dataset: str = "custom"
    id: str = ""
    choices: list[str] | None = None
    rationales: list[Rationale] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["choices"] is None:
            del d["choices"]
        return d


_REQUIRED = {"question": str, "answer": str, "answer_type": str}
_OPTIONAL = {"domain": str, "dataset": str, "id": str}
_RATIONALE_FIELDS = {"text": str, "answer": str, "correct": bool, "teacher": str}


def example_from_dict(obj: object, path: str = "<memory>", line: int | None = None) -> Example:
    """Validate one decoded JSON object; every problem names path:line and the field.

    The gold answer is checked against its answer_type and normalised as `prada.answers.GOLD_RULES` says.
    """
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    for key, typ in _REQUIRED.items():
        if key not in obj:
            raise DataError(f"missing (each line needs {', '.join(_REQUIRED)})", path, line, key)
        if not isinstance(obj[key], typ):
            raise DataError(f"expected {typ.__name__}, got {type(obj[key]).__name__}", path, line, key)
    for key in ("question", "answer"):
        if not obj[key].strip():
            raise DataError("is empty; every line needs a question and its gold answer", path, line, key)
    if obj["answer_type"] not in ANSWER_TYPES:
        raise DataError(
            f"must be one of {', '.join(ANSWER_TYPES)}, got {obj['answer_type']!r}", path, line, "answer_type"
        )
    for key, typ in _OPTIONAL.items():
        if key in obj and not isinstance(obj[key], typ):
            raise DataError(f"expected {typ.__name__}, got {type(obj[key]).__name__}", path, line, key)
    for key in ("domain", "dataset"):
        problem = name_problem(obj[key]) if obj.get(key) else None
        if problem:
            raise DataError(f"{obj[key]!r} {problem}", path, line, key)
    choices = obj.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        raise DataError("expected a list of strings (choice letters)", path, line, "choices")
    _check_encodable(obj, path, line)
    try:  # a gold that no prediction can equal is a data mistake, not a hard question (answers.GOLD_RULES)
        gold = normalise_gold(obj["answer"], obj["answer_type"], choices)
    except ValueError as e:
        raise DataError(str(e), path, line, "answer") from None
    rationales = []
    raw = obj.get("rationales", [])
    if not isinstance(raw, list):
        raise DataError("expected a list of {text, answer, correct, teacher}", path, line, "rationales")
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            raise DataError("expected an object", path, line, f"rationales[{i}]")
        for key, typ in _RATIONALE_FIELDS.items():
            if key not in r or not isinstance(r[key], typ):
                raise DataError(f"expected {typ.__name__}", path, line, f"rationales[{i}].{key}")
        _check_encodable(r, path, line, f"rationales[{i}].")
        rationales.append(Rationale(**{k: r[k] for k in _RATIONALE_FIELDS}))
    return Example(
        question=obj["question"],
        answer=gold,
        answer_type=obj["answer_type"],
        domain=obj.get("domain", "custom") or "custom",
        dataset=obj.get("dataset", "custom") or "custom",
        id=obj.get("id", "") or f"{Path(path).stem}-{line}",
        choices=choices,
        rationales=rationales,
    )


def _check_encodable(obj: dict, path: str, line: int | None, prefix: str = "") -> None:
    """JSON can spell a lone surrogate (\\ud800) that no UTF-8 writer or tokenizer accepts: refuse it here."""
    for key, value in obj.items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise DataError(
                        f"holds a character UTF-8 cannot encode ({e.reason} at {e.start}); fix the text",
                        path,
                        line,
                        f"{prefix}{key}",
                    ) from None


def read_examples(path: str | os.PathLike) -> list[Example]:
    """Read a JSONL file of examples. Raises DataError naming file:line and field on bad input."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError("file not found", path)
    examples = []
    first_line: dict[tuple[str, str], int] = {}
    for lineno, obj in iter_jsonl(path):
        ex = example_from_dict(obj, path, lineno)
        # Predictions are keyed by (dataset, id): a repeated id would silently share one output.
        first = first_line.setdefault((ex.dataset, ex.id), lineno)
        if first != lineno:
            raise DataError(
                f"duplicate id {ex.id!r} in dataset {ex.dataset!r} (first on line {first}); ids must be unique",
                path,
                lineno,
                "id",
            )
        examples.append(ex)
    if not examples:
        raise DataError("no examples in file", path)
    return examples


def write_examples(path: str | os.PathLike, examples: list[Example]) -> None:
    atomic_write_jsonl(path, (e.to_dict() for e in examples))
