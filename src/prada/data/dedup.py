"""Test questions that also occur in a training split: exact (after normalisation) or near-duplicate.

prada trains one student on several datasets at once, so a test split is clean only if no train split
of *any* dataset holds its questions: AddSub and SingleEq share MAWPS problems.

Two questions are the same problem when their normalised texts are equal, or when they are near
duplicates: token-set Jaccard >= NEAR_DUPLICATE_JACCARD *and* the same (non-empty) numbers in the same
order *and* the same gold answer, for numeric word problems only. Similarity alone is not enough: templated datasets (object tracking,
MultiArith, SVAMP's variations) hold many distinct problems whose texts differ in a name or a number. Candidate
pairs come from an inverted index over each question's rarest tokens (prefix filtering), so the check
is exact and fast.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from prada.data.schema import Example

NEAR_DUPLICATE_JACCARD = 0.8
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")


def normalise_question(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the form in which two questions are 'the same'."""
    return " ".join(_TOKEN_RE.findall(text.lower()))


def question_tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN_RE.findall(text.lower()))


@dataclass(frozen=True)
class Overlap:
    """A test question found in a train split: which train item, and exact or near (with its Jaccard)."""

    test_index: int
    train_index: int
    exact: bool
    jaccard: float


def _same_problem_data(a: Example, b: Example) -> bool:
    """Near duplicates must agree on what defines a word problem: its numbers, in order, and its answer.

    Only numeric word problems match as near duplicates (the MAWPS family, where the leaks are). Other
    questions match only exactly: in object tracking one changed name is another problem, and with a
    handful of answer letters a same-answer match is chance (13 tracking "matches" on Catch-22's 22).
    """
    numbers = _NUMBER_RE.findall(a.question)
    return (
        a.answer_type == b.answer_type == "number"
        and bool(numbers)
        and numbers == _NUMBER_RE.findall(b.question)
        and a.answer.strip().lower() == b.answer.strip().lower()
    )


def find_overlaps(
    test: list[Example], train: list[Example], threshold: float = NEAR_DUPLICATE_JACCARD
) -> list[Overlap]:
    """For each test example whose problem occurs in `train`, its match: exact text first, else the closest near duplicate."""
    exact_index = {normalise_question(e.question): i for i, e in enumerate(train)}
    train_tokens = [question_tokens(e.question) for e in train]
    frequency = Counter(t for toks in train_tokens for t in toks)
    rank = lambda toks: sorted(toks, key=lambda t: (frequency.get(t, 0), t))  # rarest first  # noqa: E731

    def prefix(toks: frozenset[str]) -> list[str]:
        # two sets with Jaccard >= t share a token among the first |A| - ceil(t |A|) + 1 rarest of either
        return rank(toks)[: len(toks) - math.ceil(threshold * len(toks)) + 1]

    index: dict[str, list[int]] = defaultdict(list)
    for j, toks in enumerate(train_tokens):
        for t in prefix(toks):
            index[t].append(j)
    found = []
    for i, example in enumerate(test):
        j = exact_index.get(normalise_question(example.question))
        if j is not None:
            found.append(Overlap(i, j, True, 1.0))
            continue
        toks = question_tokens(example.question)
        if not toks:
            continue
        best, best_j = 0.0, -1
        for j in {j for t in prefix(toks) for j in index.get(t, ())}:
            other = train_tokens[j]
            if min(len(toks), len(other)) < threshold * max(len(toks), len(other)):
                continue
            if not _same_problem_data(example, train[j]):
                continue
            jac = len(toks & other) / len(toks | other)
            if jac > best:
                best, best_j = jac, j
        if best >= threshold:
            found.append(Overlap(i, best_j, False, round(best, 4)))
    return found
