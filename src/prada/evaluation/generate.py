"""Batched greedy generation with refilled slots: a finished row's place goes to the next waiting prompt.

A decoding step's cost grows far slower than its rows (figures in docs/scale.md), so wide steps
are cheap per token. Fixed batches decode ever fewer rows as answers end (CoT answers vary in
length); refilling keeps `batch_size` rows decoding until the queue runs dry, a group of finished
rows at a time (`refill_after`: one cache copy and one prefill per group). Rows sit left-padded
in one KV cache; each carries its own position ids, so a prompt that joins late sees exactly what
it would see alone.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

import torch
from torch import nn

from prada.hf_compat import cache_keyword, cache_layers, new_cache


class _Rows:
    """The decoding rows: their prompt indices, KV cache, attention mask (B, L) and next position (B, 1)."""

    def __init__(self, index: list[int], cache, mask: torch.Tensor, positions: torch.Tensor):
        self.index, self.cache, self.mask, self.positions = index, cache, mask, positions

    def keep(self, keep: list[int], config) -> None:
        """Keep rows `keep` and drop the leading cache columns that no remaining row attends to."""
        rows = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[rows]
        first = int(mask.any(0).long().argmax())
        self.cache = new_cache(config, [(k[rows, :, first:], v[rows, :, first:]) for k, v in cache_layers(self.cache)])
        self.index, self.mask, self.positions = [self.index[i] for i in keep], mask[:, first:], self.positions[rows]

    def extend(self, other: "_Rows", config) -> None:
        """Append `other`'s rows; the shorter cache is left-padded with masked zeros (keys already carry RoPE)."""
        length = max(self.mask.shape[1], other.mask.shape[1])

        def pad(x: torch.Tensor, dim: int) -> torch.Tensor:
            missing = length - x.shape[dim]
            if missing == 0:
                return x
            shape = list(x.shape)
            shape[dim] = missing
            return torch.cat([x.new_zeros(shape), x], dim)

        self.cache = new_cache(
            config,
            [
                (torch.cat([pad(k, 2), pad(k2, 2)]), torch.cat([pad(v, 2), pad(v2, 2)]))
                for (k, v), (k2, v2) in zip(cache_layers(self.cache), cache_layers(other.cache))
            ],
        )
        self.mask = torch.cat([pad(self.mask, 1), pad(other.mask, 1)])
        self.positions = torch.cat([self.positions, other.positions])
        self.index = self.index + other.index


ENDED = -1
"""A row's prompt index once it has ended: it stays in the batch, unread, until the rows are compacted."""

SMALL_ROWS = 64
"""Up to this many rows (tokens: a decoding step's batch) a CPU linear runs weight-first."""


def _weight_first(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    if rows > SMALL_ROWS:  # prefill: little to gain there, so it stays as the reference computes it
        return nn.functional.linear(x, module.weight, module.bias)
    y = (module.weight @ x.reshape(rows, -1).T).T.contiguous().reshape(*x.shape[:-1], module.out_features)
    return y if module.bias is None else y + module.bias


@contextmanager
def weight_first_linears(model: nn.Module) -> Iterator[None]:
    """Run the model's few-row linears as (weight @ x^T)^T while the context is open (eval.weight_first_linears).

    With a handful of rows, `F.linear(x, W)` on a CPU runs far below what streaming W costs; the
    other orientation streams the weight (timings in docs/scale.md). Same products in another
    summation order (differences ~1e-5); `benchmarks/eval_throughput.py` checks predictions still equal
    per-example `generate`. Other module types keep their own kernels; `greedy_generate` opens it
    where its `weight_first` switch says (auto: a CPU model without autocast).
    """
    linears = [m for m in model.modules() if type(m) is nn.Linear and "forward" not in m.__dict__]
    for m in linears:
        m.forward = _weight_first.__get__(m)
    try:
        yield
    finally:
        for m in linears:
            del m.forward


def _prefill(student, prompts: list[list[int]], index: list[int], pad_id: int, device) -> tuple[torch.Tensor, _Rows]:
    """Run left-padded prompts (virtual prompt prepended) through the model: last-position logits and their rows."""
    T = max(len(x) for x in prompts)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), T), dtype=torch.long, device=device)
    for b, x in enumerate(prompts):  # left padding: every row's last token is at position T-1
        ids[b, T - len(x) :] = torch.tensor(x, device=device)
        mask[b, T - len(x) :] = 1
    embeds, mask = student.embed(ids, mask)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = new_cache(student.lm.config)
    out = student.lm(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{cache_keyword(student.lm): cache},
    )
    return out.logits[:, -1], _Rows(index, cache, mask, positions[:, -1:] + 1)


@torch.no_grad()
def greedy_generate(
    student,
    input_ids: list[list[int]],
    eos_id: int,
    pad_id: int,
    max_new_tokens: int,
    batch_size: int = 0,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    on_finish: Callable[[list[int], list[list[int]]], None] | None = None,
    weight_first: bool = False,
    refill_after: int = 1,
) -> list[list[int]]:
    """Greedy new tokens (EOS excluded) for every prompt, `batch_size` rows at a time (0: all at once).

    Prompts start longest first (rows that join together share little padding). `on_finish(indices,
    tokens)` sees rows as they end, so a caller can save them before the rest are done. `weight_first`
    is eval.weight_first_linears as the run resolved it (run_dir.resolve_switches); `refill_after` is
    eval.refill_after (1: a finished row's slot is refilled at once).
    """
    outputs: list[list[int]] = [[] for _ in input_ids]
    if max_new_tokens <= 0 or not input_ids:
        return outputs
    batch_size = batch_size or len(input_ids)
    waiting = deque(sorted(range(len(input_ids)), key=lambda i: -len(input_ids[i])))
    config, cache_kw = student.lm.config, cache_keyword(student.lm)
    rows: _Rows | None = None
    logits = torch.empty(0)
    ctx = (
        torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    )
    weight_first_ctx = weight_first_linears(student.lm) if weight_first else nullcontext()
    with ctx, weight_first_ctx:
        while waiting or rows is not None:
            # --- fill free slots with waiting prompts (their prefill gives their first logits)
            free = batch_size - (0 if rows is None else len(rows.index))
            if waiting and free > 0:  # slots free up only when a group of ended rows is dropped (below)
                new = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                new_logits, new_rows = _prefill(student, [input_ids[i] for i in new], new, pad_id, device)
                if rows is None:
                    rows, logits = new_rows, new_logits
                else:
                    rows.extend(new_rows, config)
                    logits = torch.cat([logits, new_logits])
            assert rows is not None
            # --- pick tokens; rows that emit EOS or reach the budget end here
            next_tokens = logits.argmax(-1)
            ended = []
            for r, (i, tok) in enumerate(zip(rows.index, next_tokens.tolist())):
                if i == ENDED:
                    continue
                if tok != eos_id:
                    outputs[i].append(tok)
                if tok == eos_id or len(outputs[i]) >= max_new_tokens:
                    ended.append(r)
            if ended and on_finish is not None:
                on_finish([rows.index[r] for r in ended], [outputs[rows.index[r]] for r in ended])
            for r in ended:
                rows.index[r] = ENDED
            keep = [r for r, i in enumerate(rows.index) if i != ENDED]
            if not keep:
                rows = None
                continue
            # ended rows ride along (their tokens unused) until enough have ended to drop them in one copy
            if len(rows.index) - len(keep) >= (min(refill_after, len(waiting)) if waiting else refill_after):
                rows.keep(keep, config)
                next_tokens = next_tokens[torch.tensor(keep, device=next_tokens.device)]
            # --- one decoding step for the rows still running
            rows.mask = torch.cat([rows.mask, rows.mask.new_ones((rows.mask.shape[0], 1))], 1)
            out = student.lm(
                input_ids=next_tokens[:, None],
                attention_mask=rows.mask,
                position_ids=rows.positions,
                use_cache=True,
                **{cache_kw: rows.cache},
            )
            rows.positions = rows.positions + 1
            logits = out.logits[:, -1]
    return outputs


def generate_texts(
    student,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    on_finish: Callable[[list[int], list[str], list[bool]], None] | None = None,
    weight_first: bool = False,
    max_prompt_tokens: int = 0,
    stats: dict | None = None,
    refill_after: int = 1,
) -> list[str]:
    """Tokenise once, generate with refilled batches, decode.

    `on_finish(indices, texts, hit_budget)` sees rows as they finish; `hit_budget[k]` is True for a row
    cut at `max_new_tokens` before it emitted EOS. `max_prompt_tokens` > 0 keeps each prompt's first
    that many tokens (a 200 kB question would otherwise make every decoding step attend to all of it).
    `stats`, if given, receives what the generation cost: rows, prompt and new tokens, rows cut at the budget.
    """
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"][: max_prompt_tokens or None] for p in prompts]
    texts: list[str] = [""] * len(prompts)

    def finished(indices: list[int], tokens: list[list[int]]) -> None:
        decoded = [tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
        for i, t in zip(indices, decoded):
            texts[i] = t
        if on_finish is not None:  # a row that ends with max_new_tokens tokens hit the budget before EOS
            on_finish(indices, decoded, [len(t) >= max_new_tokens for t in tokens])

    outputs = greedy_generate(
        student,
        encoded,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        max_new_tokens,
        batch_size,
        device,
        autocast_dtype,
        on_finish=finished,
        weight_first=weight_first,
        refill_after=refill_after,
    )
    if stats is not None:
        stats.update(
            rows=len(encoded),
            prompt_tokens=sum(map(len, encoded)),
            new_tokens=sum(map(len, outputs)),
            rows_at_budget=sum(len(t) >= max_new_tokens for t in outputs),
        )
    return texts
