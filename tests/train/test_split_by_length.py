"""train.split_by_length: a domain-mixed batch runs as length groups with the same step, less padding."""

from __future__ import annotations

import json

import pytest
from tiny import tiny_config

from prada.distill.collate import padded_length, split_by_length


def padded(lengths: list[int], groups: list[list[int]], multiple: int = 16) -> int:
    return sum(padded_length(max(lengths[i] for i in g), multiple) * len(g) for g in groups)


def test_groups_cover_every_row_once_and_cut_padding():
    lengths = [30, 200, 35, 190, 28, 210, 33, 205]  # two domains of very different lengths
    groups = split_by_length(lengths, 16)
    assert sorted(i for g in groups for i in g) == list(range(8))
    assert len(groups) >= 2
    assert padded(lengths, groups) < 0.65 * padded(lengths, [list(range(8))])


def test_similar_lengths_stay_one_group():
    assert split_by_length([100, 101, 99, 98, 102, 97, 100, 103], 16) == [[5, 3, 2, 0, 6, 1, 4, 7]]


@pytest.mark.parametrize("method", ["ft-cot", "prada"])
def test_split_trains_like_one_batch(method, synth_dir, tmp_path):
    """Same logged CoT loss with the rows split or not (the domain loss differs only by its head's dropout draws)."""
    logs = {}
    for split in ("true", "false"):
        cfg = tiny_config(synth_dir, f"method={method}", "train.max_steps=3", f"train.split_by_length={split}")
        from prada.train.loop import train

        run = train(cfg, tmp_path / split, progress=False)
        logs[split] = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    # prada: from step 2 on the weights differ through the domain head's dropout, so compare step 1
    steps = len(logs["true"]) if method == "ft-cot" else 1
    for a, b in zip(logs["true"][:steps], logs["false"][:steps]):
        assert a["lm_loss"] == pytest.approx(b["lm_loss"], abs=1e-5)
