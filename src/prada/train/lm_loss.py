"""The CoT cross-entropy over the vocabulary, computed chunk by chunk so the logits never exist at once.

The (labelled tokens x vocabulary) logits are the largest tensors of a training step: 2,000 tokens
x 49,152 words is 400 MB in fp32, held three times by plain autograd (logits, log-probabilities and
their gradient) while every layer's activations are still alive. Here each chunk's gradient with
respect to the hidden states and the head is computed in the forward pass, straight after its
loss, so only the (tokens x hidden) and (vocabulary x hidden) gradients are kept: the same matrix
products, a peak of one chunk.
"""

from __future__ import annotations

import torch
from torch import nn


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        labels: torch.Tensor,
        chunk: int,
        dft: bool = False,
    ) -> torch.Tensor:
        n = hidden.shape[0]
        ctx.weight_dtype, ctx.bias_dtype = weight.dtype, None if bias is None else bias.dtype
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if want_b else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, n, chunk):
            h, y = hidden[start : start + chunk], labels[start : start + chunk]
            logits = nn.functional.linear(h, weight, bias).float()  # (c, vocab)
            log_z = torch.logsumexp(logits, -1)
            ce = log_z - logits.gather(1, y[:, None]).squeeze(1)
            token_weight = torch.exp(-ce) if dft else None  # DFT: each token's loss times its own p (no gradient)
            total += (ce * token_weight).sum() if dft else ce.sum()
            if not (want_h or want_w or want_b):
                continue
            # d(sum of losses)/d(logits) = softmax - one-hot, built in place in the logits' memory
            probs = logits.sub_(log_z[:, None]).exp_()
            probs[torch.arange(len(y), device=y.device), y] -= 1.0
            if dft:
                probs.mul_(token_weight[:, None])
            probs = probs.to(h.dtype)
            if want_h:
                grad_h[start : start + chunk] = probs @ weight.to(h.dtype)
            if want_w:
                grad_w += (probs.T @ h).float()
            if want_b:
                grad_b += probs.float().sum(0)
        scale = 1.0 / max(n, 1)
        ctx.save_for_backward(*(g * scale if g is not None else None for g in (grad_h, grad_w, grad_b)))
        return total * scale

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grads = [g * grad_loss.to(g.dtype) if g is not None else None for g in ctx.saved_tensors]
        grad_h, grad_w, grad_b = grads
        if grad_w is not None:
            grad_w = grad_w.to(ctx.weight_dtype)
        if grad_b is not None:
            grad_b = grad_b.to(ctx.bias_dtype)
        return grad_h, grad_w, grad_b, None, None, None


def token_loss(logits: torch.Tensor, labels: torch.Tensor, dft: bool = False) -> torch.Tensor:
    """Mean cross-entropy of logits (N, V) against labels (N,); with `dft` each token's cross-entropy is
    weighted by the model's own probability of the label, detached (Dynamic Fine-Tuning, Wu et al. 2025;
    TRL's `loss_type="dft"`): confident tokens count fully, unlikely ones less."""
    ce = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
    return (ce * torch.exp(-ce).detach()).mean() if dft else ce.mean()


def linear_cross_entropy(
    hidden: torch.Tensor, head: nn.Module, labels: torch.Tensor, chunk: int = 512, dft: bool = False
) -> torch.Tensor:
    """Mean cross-entropy of `head(hidden)` against `labels` (DFT-weighted with `dft`): hidden (N, D), labels (N,).

    A plain nn.Linear head (SmolLM2, Llama, Qwen, GPT-2, ...) goes through the chunked path; any other
    head module is applied as it is.
    """
    if type(head) is not nn.Linear:
        return token_loss(head(hidden), labels, dft)
    return _ChunkedLinearCrossEntropy.apply(hidden, head.weight, head.bias, labels, chunk, dft)
