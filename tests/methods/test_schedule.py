"""train.scheduler: the lr factor of each step, warmup first (methods/schedule.py)."""

import math

import pytest

from prada.config import load_config
from prada.errors import ConfigError
from prada.methods.schedule import lr_factor


def test_linear_is_the_old_default_warmup_then_a_straight_line_towards_a_tenth():
    assert load_config().train.scheduler == "linear"
    factors = [lr_factor(s, 12, 2) for s in range(12)]
    assert factors[:2] == [0.5, 1.0]  # warmup: (step + 1) / warmup_steps
    # after warmup: 1 - 0.9 * (step - 2) / 10, the formula the loop used before the key existed
    assert factors[2:] == pytest.approx([1 - 0.9 * (s - 2) / 10 for s in range(2, 12)])
    assert factors == [lr_factor(s, 12, 2, "linear") for s in range(12)]


def test_cosine_starts_at_one_ends_towards_a_tenth_and_stays_above_the_line():
    factors = [lr_factor(s, 12, 2, "cosine") for s in range(12)]
    assert factors[:2] == [0.5, 1.0]  # the same warmup
    assert factors[2] == pytest.approx(1.0)
    assert factors[7] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # halfway: 0.55
    assert all(a > b for a, b in zip(factors[2:], factors[3:]))  # falls every step
    assert all(c > lr_factor(s, 12, 2) for s, c in zip(range(3, 7), factors[3:7]))  # above the line early
    assert 0.1 < factors[-1] < lr_factor(11, 12, 2)  # below it late, never under the floor
    assert lr_factor(12, 12, 2, "cosine") == pytest.approx(0.1)


def test_constant_keeps_the_base_lr_after_warmup():
    assert [lr_factor(s, 10, 3, "constant") for s in range(10)] == [1 / 3, 2 / 3, 1.0] + [1.0] * 7
    assert [lr_factor(s, 5, 0, "constant") for s in range(5)] == [1.0] * 5


def test_every_scheduler_is_flat_when_warmup_takes_every_step():
    for name in ("linear", "cosine", "constant"):
        assert lr_factor(4, 4, 4, name) == 1.0


def test_the_scheduler_key_is_a_closed_choice():
    assert load_config(None, ["train.scheduler=cosine"]).train.scheduler == "cosine"
    with pytest.raises(ConfigError, match=r"^train\.scheduler: 'exponential' is not one of linear, cosine, constant"):
        load_config(None, ["train.scheduler=exponential"])
