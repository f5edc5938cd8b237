"""Schedules as pure functions of training progress p in [0, 1], so resume is exact and nothing hides in a module."""

from __future__ import annotations

import math


def grl_lambda(p: float, lambda_max: float, schedule: str = "dann", gamma: float = 10.0) -> float:
    """DANN schedule lambda_p = lambda_max * (2 / (1 + exp(-gamma p)) - 1); `constant` gives lambda_max."""
    if schedule == "constant":
        return lambda_max
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


LR_FLOOR = 0.1  # where the decaying schedules end, as a factor of the base lr


def lr_factor(step: int, total_steps: int, warmup_steps: int, scheduler: str = "linear") -> float:
    """The lr multiplier of `step` (0-based): linear warmup, then train.scheduler over the remaining steps:
    linear (a straight line from 1 towards LR_FLOOR at total_steps) | cosine (half a cosine from 1 towards
    LR_FLOOR) | constant (1.0)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps or scheduler == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if scheduler == "cosine":
        return LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if scheduler == "linear":
        return 1.0 - (1.0 - LR_FLOOR) * progress
    raise ValueError(f"train.scheduler: {scheduler!r} is not one of linear, cosine, constant")
