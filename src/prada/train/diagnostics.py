"""Is the adversary working? Held-out figures logged every `train.eval_every` steps.

The domain head's own training accuracy says little: a head that always wins and a head the
features fool into being confidently wrong (inversion, not invariance) both look like "working" on
some reading of it. So on held-out questions (test questions, answers unused) we measure, in eval mode:

- `heldout_head_acc`: the domain head's accuracy on their features (with an adversary);
- `heldout_probe_acc`: a *fresh* logistic-regression probe's 2-fold cross-validated domain accuracy on
  a PCA-8 projection of the same features, beside `heldout_probe_majority` (the majority-domain rate):
  the test of invariance (`heldout_probe_full_acc`: the same probe on all dimensions);
- `heldout_lm_loss_source` / `_target`: the CoT loss on the teacher rationales of those questions,
  so a gain in invariance can be read against what it costs the task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from prada.config import RunConfig
from prada.distill.collate import Batch, TrainItem, build_question_items, build_train_items, collate
from prada.distill.dataset import DistillationSet
from prada.methods.adversary import domain_classes, pool_question

HELDOUT_PER_DOMAIN = 32


@dataclass
class HeldOut:
    """Tokenised held-out questions (all domains) and CoT items (source and target), built once per run."""

    questions: list[TrainItem]
    cot_source: list[TrainItem]
    cot_target: list[TrainItem]
    layer: int
    pad_id: int
    pad_multiple: int
    batch_size: int
    classes: list[int]  # the probe's class of each domain index: adversary.labels (domain, or source vs target)


def build_heldout(cfg: RunConfig, data: DistillationSet, tokenizer, per_domain: int = HELDOUT_PER_DOMAIN) -> HeldOut:
    """Up to `per_domain` test questions of each domain (a fixed seeded sample), tokenised as training does."""
    rng = random.Random(cfg.seed)
    by_domain: dict[str, list] = {}
    for exs in data.test_sets.values():
        for ex in exs:
            by_domain.setdefault(ex.domain, []).append(ex)
    chosen = []
    for d in data.domains:
        exs = by_domain.get(d, [])
        chosen += rng.sample(exs, per_domain) if len(exs) > per_domain else exs
    questions = build_question_items(chosen, tokenizer, data.domains, cfg.student.max_length)
    with_rationale = [e for e in chosen if any(r.correct for r in e.rationales)]
    items = lambda exs: build_train_items(exs, tokenizer, data.domains, cfg.student.max_length)  # noqa: E731
    return HeldOut(
        questions,
        items([e for e in with_rationale if e.domain in data.source_domains]),
        items([e for e in with_rationale if e.domain in data.target_domains]),
        cfg.adversary.layer,
        tokenizer.pad_token_id,
        cfg.student.pad_multiple,
        cfg.train.batch_size,
        domain_classes(data.domains, data.target_domains, cfg.adversary.labels)
        if data.target_domains
        else list(range(len(data.domains))),
    )


def _batches(items: list[TrainItem], held: HeldOut, with_labels: bool) -> list[Batch]:
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt_ids) + len(items[i].target_ids))
    return [
        collate([items[i] for i in order[s : s + held.batch_size]], held.pad_id, held.pad_multiple, with_labels)
        for s in range(0, len(order), held.batch_size)
    ]


PROBE_DIMS = 8


def fresh_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0, dims: int | None = PROBE_DIMS) -> float | None:
    """2-fold cross-validated accuracy of a new logistic-regression domain probe; None with < 2 per domain.

    `dims`: the probe sees a PCA projection of that size, fit on its training fold (None: all features).
    With fewer questions than feature dimensions a full linear probe separates any labelling, so the
    capacity-limited one is the figure with a dynamic range; both are logged.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels)
    if (counts > 0).sum() < 2 or counts[counts > 0].min() < 2:
        return None
    steps = [StandardScaler()]
    if dims is not None:
        steps.append(PCA(n_components=min(dims, features.shape[1], len(labels) // 2), random_state=seed))
    probe = make_pipeline(*steps, LogisticRegression(max_iter=1000))
    return float(
        cross_val_score(probe, features, labels, cv=StratifiedKFold(2, shuffle=True, random_state=seed)).mean()
    )


@torch.no_grad()
def heldout_figures(student, held: HeldOut, device: torch.device, seed: int = 0) -> dict[str, float]:
    """The module docstring's figures for the student as it is now (eval mode inside, train mode restored)."""
    was_training = student.training
    student.eval()
    out: dict[str, float] = {}
    try:
        feats, labels, head_right, head_n = [], [], 0.0, 0
        for batch in _batches(held.questions, held, with_labels=False):
            batch = batch.to(device)
            hidden = student.layer_states(batch, held.layer)
            if student.adversary is not None:
                f, y = student.adversary.features(hidden, batch.question_mask, batch.domain)
                head_right += float(student.adversary.accuracy(f, y)) * len(y)
                head_n += len(y)
            pooled = pool_question(hidden.float(), batch.question_mask)
            feats.append(pooled.cpu().numpy())
            labels.append(np.asarray(held.classes)[batch.domain.cpu().numpy()])
        if feats:
            X, y = np.concatenate(feats), np.concatenate(labels)
            for key, dims in (("heldout_probe_acc", PROBE_DIMS), ("heldout_probe_full_acc", None)):
                probe = fresh_probe(X, y, seed, dims)
                if probe is not None:
                    out[key] = probe
            out["heldout_probe_majority"] = float(np.bincount(y).max() / len(y))
        if head_n:
            out["heldout_head_acc"] = head_right / head_n
        for role, items in (("source", held.cot_source), ("target", held.cot_target)):
            if items:
                losses = [
                    (float(student(b.to(device))[0]["lm_loss"]), b.num_target_tokens)
                    for b in _batches(items, held, True)
                ]
                out[f"heldout_lm_loss_{role}"] = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    finally:
        student.train(was_training)
    return out
