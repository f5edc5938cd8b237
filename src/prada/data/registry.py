"""The built-in datasets: key -> domain and answer type (Fine-tune-CoT's grouping of the 12 benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

ANSWER_TYPES = ("number", "choice", "yes_no", "text")
DOMAINS = ("arithmetic", "other", "symbolic", "commonsense")


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
