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
    """K-way classifier on pooled features: an MLP (default) or, weaker, one linear layer without dropout."""

    def __init__(self, hidden_size: int, num_domains: int, head_hidden: int = 256, kind: str = "mlp"):
        super().__init__()
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(hidden_size, num_domains))
        else:
            self.net = nn.Sequential(
                nn.Linear(hidden_size, head_hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(head_hidden, num_domains)
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (..., H) -> logits (..., K). Runs in fp32 even under bf16 autocast (which would otherwise
        cast its linears down): the head is tiny, and its reversed gradient is what reaches the features."""
        with torch.autocast(features.device.type, enabled=False):
            return self.net(features.float())


class Adversary(nn.Module):
    """Domain head + how its loss reaches the features. `loss` gives one batch's domain loss and accuracy.

    - `grl` (DANN): the head minimises the domain cross-entropy; a gradient-reversal layer hands the
      features -lam times its gradient, so they learn to make the head wrong.
    - `confusion` (Tzeng et al. 2015; Lee et al. 2019 for K-way domains): the head minimises the
      cross-entropy on detached features; the features minimise lam x the cross-entropy of the head's
      prediction against the uniform distribution (KL to uniform up to a constant), through a frozen
      copy of the head. Their optimum is a head that cannot tell, not one that is confidently wrong.

    `pooling`: `mean` classifies each question's mean state; `tokens` classifies every question token.
    """

    def __init__(
        self,
        hidden_size: int,
        num_domains: int,
        head_hidden: int,
        layer: int,
        head: str = "mlp",
        objective: str = "grl",
        pooling: str = "mean",
        classes: list[int] | None = None,
    ):
        super().__init__()
        self.layer, self.objective, self.pooling = layer, objective, pooling
        self.num_domains = num_domains
        classes = list(range(num_domains)) if classes is None else list(classes)
        self.register_buffer("class_of_domain", torch.tensor(classes, dtype=torch.long), persistent=False)
        self.num_classes = max(classes) + 1
        self.head = DomainHead(hidden_size, self.num_classes, head_hidden, head)

    def classes(self, domains: torch.Tensor) -> torch.Tensor:
        """The head's class of each domain index (adversary.labels: the domain itself, or source/target)."""
        return self.class_of_domain[domains]

    def features(self, hidden: torch.Tensor, question_mask: torch.Tensor, domains: torch.Tensor):
        """(features (N, H), labels (N,)): one row per question (mean) or per question token (tokens)."""
        labels = self.classes(domains)
        if self.pooling == "tokens":
            keep = question_mask.bool()
            return hidden[keep], labels[:, None].expand_as(question_mask)[keep]
        return pool_question(hidden, question_mask), labels

    def loss(
        self, features: torch.Tensor, labels: torch.Tensor, lam: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """features: (N, H) from `features`; labels: (N,) domains. Returns (loss, stats).

        stats (detached): `ce`, the head's cross-entropy (chance: ln K), and `acc`, its accuracy.
        """
        if self.objective == "confusion":
            logits = self.head(features.detach())
            head_loss = nn.functional.cross_entropy(logits, labels)
            frozen = {k: v.detach() for k, v in self.head.named_parameters()}
            feature_logits = torch.func.functional_call(self.head, frozen, (features,))
            uniform = nn.functional.log_softmax(feature_logits, -1).mean(-1).neg().mean()  # CE to uniform
            loss = head_loss + lam * uniform
        else:
            logits = self.head(reverse_gradient(features, lam))
            head_loss = nn.functional.cross_entropy(logits, labels)
            loss = head_loss
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, {"ce": head_loss.detach(), "acc": acc.detach()}

    @torch.no_grad()
    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The head's accuracy without any gradient (the held-out probe)."""
        return (self.head(features).argmax(-1) == labels).float().mean()


def domain_classes(domains: list[str], target_domains: list[str], labels: str) -> list[int]:
    """adversary.labels as the head's class of each domain (in the run's domain order).

    `domain`: K classes, one a domain. `origin`: two, source (0) vs target (1), whatever the domains
    (DANN's N_s / N_t form: the one that fits a shift inside one task).
    """
    if labels == "origin":
        if not target_domains:
            from prada.errors import ConfigError

            raise ConfigError("adversary.labels: origin needs target domains (data.target_domains); this run has none")
        return [int(d in target_domains) for d in domains]
    return list(range(len(domains)))
