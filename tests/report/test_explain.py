"""prada explain: probe and PAD maths on known features; explain_run on a tiny run with --data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tiny import make_synth, tiny_config

from prada.report.explain import domain_probe, explain_run, proxy_a_distances
from prada.train.loop import train


@pytest.fixture(scope="module", autouse=True)
def _prada_cache(tmp_path_factory):
    if "PRADA_CACHE" not in os.environ:
        os.environ["PRADA_CACHE"] = str(tmp_path_factory.mktemp("prada-cache"))


def test_probe_and_pad_on_known_features():
    rng = np.random.default_rng(0)
    same = rng.normal(size=(120, 8)).astype(np.float32)
    labels = ["a"] * 60 + ["b"] * 60
    shifted = same.copy()
    shifted[60:] += 4.0  # b far from a: linearly separable
    sep = proxy_a_distances(shifted, labels)
    assert sep["a|b"] == pytest.approx(2.0)
    assert domain_probe(shifted, labels)["accuracy"] == pytest.approx(1.0)
    mixed = proxy_a_distances(same, labels)  # one distribution: a classifier can only guess
    assert abs(mixed["a|b"]) < 0.7
    probe = domain_probe(same, labels)
    assert probe["chance"] == 0.5 and abs(probe["accuracy"] - 0.5) < 0.2
    assert domain_probe(same[:3], ["a", "b", "b"]) is None  # a class with one item cannot be cross-validated


def test_explain_run_with_data_dir(tmp_path):
    data = make_synth(tmp_path / "synth")
    run = train(tiny_config(data, "method=zero-shot"), tmp_path / "run", progress=False)
    out = explain_run(run, data=str(data), max_per_dataset=10, progress=False)
    result = json.loads((out / "explain.json").read_text())
    assert set(result["n_questions"]) == {"arithmetic", "other", "symbolic", "commonsense"}
    for side in ("trained", "untrained"):
        probe = result[side]["probe"]
        assert 0.0 <= probe["accuracy"] <= 1.0 and 0.0 < probe["chance"] <= 1.0
        assert len(result[side]["pad"]) == 6  # every pair of 4 domains
        assert all(-2.0 <= v <= 2.0 for v in result[side]["pad"].values())
    sample = result["samples"]["symbolic"][0]
    assert sample["teacher"] and sample["student"] is None  # no eval yet: the teacher side only
    assert (out / "features_pca.png").stat().st_size > 0
    assert "Proxy A-distance" in (out / "explain.md").read_text()
