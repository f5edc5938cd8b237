"""Schedules as pure functions of training progress p in [0, 1], so resume is exact and nothing hides in a module."""

from __future__ import annotations

import math


def grl_lambda(p: float, lambda_max: float, schedule: str = "dann", gamma: float = 10.0) -> float:
    """DANN schedule lambda_p = lambda_max * (2 / (1 + exp(-gamma p)) - 1); `constant` gives lambda_max."""
    if schedule == "constant":
        return lambda_max
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warmup then linear decay to 10% (a multiplier on each group's base lr)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 1.0 - 0.9 * min(1.0, progress)
