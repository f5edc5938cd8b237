"""Tokenise once, batch by length, pad, and mask: the tensors the loop consumes.

Source batches carry labels (-100 on prompt and padding) and a question mask; target batches
carry the question only. Labels are built explicitly because the pad token may equal EOS.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from prada.data.schema import Example
from prada.distill.format import format_answer_target, format_prompt, format_target


@dataclass
class TrainItem:
    prompt_ids: list[int]
    target_ids: list[int]
    domain: int


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T) 1 = real token
    question_mask: torch.Tensor  # (B, T) 1 = question (prompt) token
    domain: torch.Tensor  # (B,)
    labels: torch.Tensor | None = None  # (B, T), -100 outside the target

    def to(self, device: torch.device) -> "Batch":
        return Batch(
            *(
                t.to(device) if t is not None else None
                for t in (self.input_ids, self.attention_mask, self.question_mask, self.domain, self.labels)
            )
        )

    @property
    def num_target_tokens(self) -> int:
        return 0 if self.labels is None else int((self.labels != -100).sum())


def tokenize_prompt(tokenizer, question: str) -> list[int]:
    return tokenizer(format_prompt(question), add_special_tokens=True)["input_ids"]


def build_train_items(
    examples: list[Example],
    tokenizer,
    domains: list[str],
    max_length: int,
    only_correct: bool = True,
    max_rationales: int = 1,
    with_rationale: bool = True,
) -> list[TrainItem]:
    """One item per (question, kept rationale). Targets longer than max_length are truncated (no EOS then).

    `with_rationale` False (answer-only fine-tuning): one ` --> {answer}` item per question that has a
    kept rationale, so the same questions train as with rationales.
    """
    items = []
    eos = tokenizer.eos_token_id
    for ex in examples:
        kept = [r for r in ex.rationales if r.correct or not only_correct][: max(1, max_rationales)]
        prompt = tokenize_prompt(tokenizer, ex.question)[: max_length - 1]
        for r in kept if with_rationale else kept[:1]:
            text = format_target(r.text, ex.answer if r.correct else r.answer) if with_rationale else None
            text = text or format_answer_target(ex.answer if r.correct else r.answer)
            target = tokenizer(text, add_special_tokens=False)["input_ids"]
            target = (target + [eos])[: max_length - len(prompt)]
            items.append(TrainItem(prompt, target, domains.index(ex.domain)))
    return items


def build_question_items(examples: list[Example], tokenizer, domains: list[str], max_length: int) -> list[TrainItem]:
    """Question-only items for the adversary's target batches."""
    return [
        TrainItem(tokenize_prompt(tokenizer, e.question)[:max_length], [], domains.index(e.domain)) for e in examples
    ]


def padded_length(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def collate(items: list[TrainItem], pad_id: int, pad_multiple: int = 16, with_labels: bool = True) -> Batch:
    """Right-pad items into a Batch (training uses right padding; generation uses left)."""
    lengths = [len(i.prompt_ids) + (len(i.target_ids) if with_labels else 0) for i in items]
    T = padded_length(max(lengths), pad_multiple)
    B = len(items)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    question = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long) if with_labels else None
    for b, item in enumerate(items):
        P = len(item.prompt_ids)
        seq = item.prompt_ids + (item.target_ids if with_labels else [])
        input_ids[b, : len(seq)] = torch.tensor(seq)
        attention[b, : len(seq)] = 1
        question[b, :P] = 1
        if with_labels:
            labels[b, P : len(seq)] = torch.tensor(item.target_ids)
    domain = torch.tensor([i.domain for i in items], dtype=torch.long)
    return Batch(input_ids, attention, question, domain, labels)


def epoch_batches(
    items: list[TrainItem], batch_size: int, seed: int, epoch: int, group: int = 64, mix_domains: bool = True
) -> list[list[int]]:
    """Length-grouped batches for one epoch: shuffle, sort inside chunks of `group` batches, shuffle batches.

    `mix_domains` sorts each chunk by an item's length *rank within its own domain* instead of its
    length, so a batch holds every domain in its share of the chunk (sorting by raw length made
    98% of a batch one domain, and a short run's last steps one domain's). A pure function of
    (seed, epoch), so resume replays the same order.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(items)))
    rng.shuffle(order)
    chunk = batch_size * group
    length = lambda i: len(items[i].prompt_ids) + len(items[i].target_ids)  # noqa: E731
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=length)
        if mix_domains:
            by_domain: dict[int, list[int]] = {}
            for i in part:
                by_domain.setdefault(items[i].domain, []).append(i)
            quantile = {i: (r + 0.5) / len(members) for members in by_domain.values() for r, i in enumerate(members)}
            part.sort(key=lambda i: (quantile[i], length(i)))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def split_by_length(
    lengths: list[int], pad_multiple: int, max_parts: int = 3, call_cost: float = 0.05
) -> list[list[int]]:
    """Positions of one batch's rows in up to `max_parts` groups of similar length, the fewest padded tokens.

    A domain-mixed batch pads short rows to the longest; run as a few length groups (gradients summed,
    see StepShare) it costs about what a single-domain batch costs. Each extra group is charged
    `call_cost` x the batch's real tokens (one more forward call), so a batch splits only where it pays.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sizes = [lengths[i] for i in order]
    overhead = call_cost * sum(sizes)

    def cost(a: int, b: int) -> float:  # rows order[a:b] as one group
        return padded_length(sizes[b - 1], pad_multiple) * (b - a)

    n = len(sizes)
    best: dict[tuple[int, int], tuple[float, list[int]]] = {}  # (start, parts left) -> (cost, cut points)

    def solve(start: int, parts: int) -> tuple[float, list[int]]:
        if (start, parts) in best:
            return best[(start, parts)]
        options = [(cost(start, n), [])]
        if parts > 1:
            for cut in range(start + 1, n):
                rest, cuts = solve(cut, parts - 1)
                options.append((cost(start, cut) + overhead + rest, [cut, *cuts]))
        best[(start, parts)] = min(options, key=lambda o: o[0])
        return best[(start, parts)]

    cuts = [0, *solve(0, max_parts)[1], n]
    return [order[a:b] for a, b in zip(cuts, cuts[1:])]


class GroupedBatches:
    """Global batch g of an endless run of length-grouped epochs (`epoch_batches`).

    A pure function of (seed, g), so a resumed run replays the same batches. With `drop_last` an
    epoch skips its final partial batch (several processes must all step the same number of times).
    """

    def __init__(
        self, items: list[TrainItem], batch_size: int, seed: int, drop_last: bool = False, mix_domains: bool = True
    ):
        self.items, self.batch_size, self.seed, self.drop_last = items, batch_size, seed, drop_last
        self.mix_domains = mix_domains
        n = len(items) // batch_size if drop_last else math.ceil(len(items) / batch_size)
        self.per_epoch = max(1, n)
        self._epoch: int | None = None
        self._batches: list[list[int]] = []

    def __getitem__(self, g: int) -> list[int]:
        if not self.items:  # no target questions (in-domain runs): every batch is empty
            return []
        epoch, idx = divmod(g, self.per_epoch)
        if epoch != self._epoch:
            batches = epoch_batches(self.items, self.batch_size, self.seed, epoch, mix_domains=self.mix_domains)
            full = [b for b in batches if len(b) == self.batch_size]
            self._epoch, self._batches = epoch, full if self.drop_last and full else batches
        return self._batches[idx]
