"""The built-in datasets: key -> domain and answer type (Fine-tune-CoT's grouping of the 12 benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

ANSWER_TYPES = ("number", "choice", "yes_no", "text")
DOMAINS = ("arithmetic", "other", "symbolic", "commonsense")


def ordered_domains(domains) -> list[str]:
    """Domains for display and folds: the built-in ones in DOMAINS order, then any others sorted."""
    present = set(domains)
    return [d for d in DOMAINS if d in present] + sorted(present - set(DOMAINS))


BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a dataset, domain or fold name (it becomes part of folder names), or None.

    A plain name: 1-100 bytes in UTF-8 (file systems count bytes: 70 emoji are 280), no `/`, `\\`, `..`, NUL,
    control characters or bidirectional overrides (which make a folder name read as another), no leading dot.
    """
    if not isinstance(name, str) or not name:
        return "must be a non-empty name"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > 100:
        return f"is {size} bytes long in UTF-8 (at most 100)"
    if name.startswith("."):
        return "must not start with a dot"
    if "/" in name or "\\" in name or ".." in name:
        return "must be a plain name (no /, \\ or ..): it becomes part of a folder name"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return "must not contain control characters"
    if any(c in BIDI_CONTROLS for c in name):
        return "must not contain bidirectional control characters (U+200E/F, U+202A-E, U+2066-9)"
    if any(0xD800 <= ord(c) < 0xE000 for c in name):
        return "must not contain a lone surrogate"
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
