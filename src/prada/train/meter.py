"""What one optimizer step's log row says about its losses and metrics, gathered over its micro-batch parts."""

from __future__ import annotations

import math

import torch

from prada.errors import PradaError


class Meter:
    """Losses add up over a step's parts (each part is its share of the step); metrics are weighted means
    with the weights the loss seam gives (`Student.forward`). Values stay on the device until `means`."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, float] = {}

    def add(self, losses: dict[str, torch.Tensor], metrics: dict[str, tuple[torch.Tensor, float]]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float()
        for k, (v, w) in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float() * w
            self.weights[k] = self.weights.get(k, 0.0) + w

    def means(self, reduce, step: int, lr: float) -> dict[str, float]:
        """The step's figures, averaged over processes with `reduce` (every rank calls it). A non-finite one
        stops the run: there is nothing to resume from, NaN weights would only train on as NaN."""
        values = {k: v / self.weights.get(k, 1.0) for k, v in self.sums.items()}
        means = {k: float(reduce(v, "mean")) for k, v in values.items()}
        bad = {k: v for k, v in means.items() if not math.isfinite(v)}
        if bad:
            raise PradaError(
                f"step {step}: {', '.join(f'{k} = {v}' for k, v in bad.items())}: training diverged "
                f"(train.lr={lr:g}); lower train.lr and start the run again in a new --out"
            )
        return means
