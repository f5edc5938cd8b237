"""Shared builders for tests: a tiny synthetic data folder and tiny run configs (no downloads)."""

from __future__ import annotations

from pathlib import Path

from prada.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "configs" / "tiny.yaml"


def tiny_config(data_dir: Path, *overrides: str) -> RunConfig:
    """configs/tiny.yaml pointed at a prepared data folder, plus key=value overrides."""
    return load_config(TINY_YAML, [f"data.data_dir={data_dir}", *overrides])


def make_synth(folder: Path, seed: int = 0) -> Path:
    from prada.data.synth import build_synth

    build_synth(folder, seed=seed, n_train=40, n_test=10)
    return folder
