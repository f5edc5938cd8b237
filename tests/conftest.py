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
