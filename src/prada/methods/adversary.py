"""The adversary: gradient reversal, question-token pooling and a K-way domain head (DANN, Ganin et al. 2016)."""

from __future__ import annotations

import torch
from torch import nn


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; backward multiplies the gradient by -lam, so features learn to fool the head."""
    return _GradientReversal.apply(x, lam)


def pool_question(hidden: torch.Tensor, question_mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden states over real question tokens.

    hidden: (B, T, H) states of the *real* tokens (virtual-token positions already sliced off);
    question_mask: (B, T), 1 on question tokens, 0 on padding and target tokens. Returns (B, H).
    """
    mask = question_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class DomainHead(nn.Module):
    """K-way MLP classifier on pooled features."""

    def __init__(self, hidden_size: int, num_domains: int, head_hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden_size, head_hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(head_hidden, num_domains)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, H) -> logits (B, K). Runs in fp32 for a stable small head under autocast."""
        return self.net(features.float())


class Adversary(nn.Module):
    """GRL + domain head. `loss` gives the domain cross-entropy and accuracy of one pooled batch."""

    def __init__(self, hidden_size: int, num_domains: int, head_hidden: int, layer: int):
        super().__init__()
        self.layer = layer
        self.head = DomainHead(hidden_size, num_domains, head_hidden)

    def loss(self, features: torch.Tensor, domains: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (B, H) pooled; domains: (B,) int. Returns (mean CE, accuracy)."""
        logits = self.head(reverse_gradient(features, lam))
        loss = nn.functional.cross_entropy(logits, domains)
        acc = (logits.argmax(-1) == domains).float().mean()
        return loss, acc.detach()
