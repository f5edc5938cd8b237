"""Shared fixtures. Keep this small: fixtures used by one folder live in that folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only upstream data copies in ../shared/data (skips the test when they are absent)."""
    if not (SHARED_DATA / "zero_shot_cot").is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _prada_cache(tmp_path_factory):
    """Keep the tiny-random model and any built data out of the user's cache (unless PRADA_CACHE is set)."""
    import os

    if "PRADA_CACHE" not in os.environ:
        os.environ["PRADA_CACHE"] = str(tmp_path_factory.mktemp("prada-cache"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic data folder (6 datasets x 40 train / 10 test), built once per session."""
    from tiny import make_synth

    return make_synth(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="session")
def counting_model(tmp_path_factory) -> Path:
    """A tiny student trained on the counting task (tiny.train_counting_model): a HF model folder whose
    greedy outputs differ per prompt and are long, for every test that compares generated text."""
    from tiny import train_counting_model

    return train_counting_model(tmp_path_factory.mktemp("counting-model"))


@pytest.fixture(scope="session")
def counting_data(tmp_path_factory) -> Path:
    """The counting task as a prada data folder: datasets `counting` (symbolic) and `counting_other` (other)."""
    from tiny import make_counting_data

    return make_counting_data(tmp_path_factory.mktemp("counting-data"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` (the CUDA side of each device switch's equivalence test) run only where torch sees CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
