"""The built-in datasets: key -> domain and answer type (Fine-tune-CoT's grouping of the 12 benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

ANSWER_TYPES = ("number", "choice", "yes_no", "text")
DOMAINS = ("arithmetic", "other", "symbolic", "commonsense")


def ordered_domains(domains) -> list[str]:
    """Domains for display and folds: the built-in ones in DOMAINS order, then any others sorted."""
    present = set(domains)
    return [d for d in DOMAINS if d in present] + sorted(present - set(DOMAINS))


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a dataset, domain or fold name (it becomes part of folder names), or None.

    A plain name: 1-100 characters, no `/`, `\\`, `..`, NUL or control characters, no leading dot.
    """
    if not isinstance(name, str) or not name:
        return "must be a non-empty name"
    if len(name) > 100:
        return f"is {len(name)} characters long (at most 100)"
    if name.startswith("."):
        return "must not start with a dot"
    if "/" in name or "\\" in name or ".." in name:
        return "must be a plain name (no /, \\ or ..): it becomes part of a folder name"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must not contain control characters"
    return None


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    domain: str
    answer_type: str


FTCOT12: dict[str, DatasetInfo] = {
    d.key: d
    for d in [
        DatasetInfo("single_eq", "arithmetic", "number"),
        DatasetInfo("addsub", "arithmetic", "number"),
        DatasetInfo("multiarith", "arithmetic", "number"),
        DatasetInfo("gsm8k", "arithmetic", "number"),
        DatasetInfo("aqua", "arithmetic", "choice"),
        DatasetInfo("svamp", "arithmetic", "number"),
        DatasetInfo("date_understanding", "other", "choice"),
        DatasetInfo("tracking_shuffled_objects", "other", "choice"),
        DatasetInfo("last_letter_concatenation", "symbolic", "text"),
        DatasetInfo("coin_flip", "symbolic", "yes_no"),
        DatasetInfo("commonsense_qa", "commonsense", "choice"),
        DatasetInfo("strategy_qa", "commonsense", "yes_no"),
    ]
}
