"""Batched greedy generation: left padding, KV cache, virtual prompt, finished rows dropped from the batch.

Dropping finished sequences (instead of decoding padding until the longest one ends) matters on
a CPU, where a batch costs time per row.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch
from transformers import DynamicCache

from prada.train.backbones import cache_keyword


@torch.no_grad()
def greedy_generate(
    student, input_ids: list[list[int]], eos_id: int, pad_id: int, max_new_tokens: int,
    device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
) -> list[list[int]]:
    """Generate greedily for a batch of token lists; returns new tokens per row (EOS excluded)."""
    B = len(input_ids)
    T = max(len(x) for x in input_ids)
    ids = torch.full((B, T), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((B, T), dtype=torch.long, device=device)
    for b, x in enumerate(input_ids):  # left padding: every row's last token is at position T-1
        ids[b, T - len(x):] = torch.tensor(x, device=device)
        mask[b, T - len(x):] = 1
    lm = student.lm
    cache_kw = cache_keyword(lm)
    outputs: list[list[int]] = [[] for _ in range(B)]
    alive = torch.arange(B, device=device)
    cache = DynamicCache()
    ctx = torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        embeds, mask = student.embed(ids, mask)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **{cache_kw: cache})
        for _ in range(max_new_tokens):
            next_tokens = out.logits[:, -1].argmax(-1)  # (B_alive,)
            finished = next_tokens == eos_id
            for row, tok, fin in zip(alive.tolist(), next_tokens.tolist(), finished.tolist()):
                if not fin:
                    outputs[row].append(tok)
            keep = (~finished).nonzero().squeeze(-1)
            if keep.numel() == 0 or len(outputs[alive[keep[0]].item()]) >= max_new_tokens:
                break
            if keep.numel() < alive.numel():  # drop finished rows from the batch and its cache
                alive, next_tokens, mask, positions = alive[keep], next_tokens[keep], mask[keep], positions[keep]
                cache.batch_select_indices(keep)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], 1)
            positions = positions[:, -1:] + 1
            out = lm(input_ids=next_tokens[:, None], attention_mask=mask, position_ids=positions, use_cache=True, **{cache_kw: cache})
    return outputs


def generate_texts(
    student, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
    device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
    on_batch: Callable[[list[int], list[str]], None] | None = None,
) -> list[str]:
    """Tokenise once, batch prompts of similar length together, decode. `on_batch(indices, texts)` sees each batch."""
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    texts: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        new = greedy_generate(student, [encoded[i] for i in idx], tokenizer.eos_token_id, tokenizer.pad_token_id,
                              max_new_tokens, device, autocast_dtype)
        batch_texts = [tokenizer.decode(t, skip_special_tokens=True) for t in new]
        for i, t in zip(idx, batch_texts):
            texts[i] = t
        if on_batch is not None:
            on_batch(idx, batch_texts)
    return texts
