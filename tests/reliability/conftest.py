"""Fixtures of the reliability tests: a private prada cache and the kill-harness trial records."""

from __future__ import annotations

import os
import shutil
import sys
from collections import defaultdict

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_prada_cache(tmp_path_factory):
    """The tiny-random model and built data go to a temp folder, never the user's ~/.cache/prada."""
    if "PRADA_CACHE" not in os.environ:
        os.environ["PRADA_CACHE"] = str(tmp_path_factory.mktemp("prada-cache"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, synth_dir):
    """A private copy of the synthetic data (tests here edit their own copies of it)."""
    out = tmp_path_factory.mktemp("data") / "synth"
    shutil.copytree(synth_dir, out)
    return out


class TrialLog:
    """Per command: trials, kills, kills that landed mid-work, items lost, duplicated items, stale temp files."""

    def __init__(self):
        self.rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, trial, lost: int, duplicated: int = 0, stale: int = 0, **extra: int) -> None:
        row = self.rows[trial.command]
        row["trials"] += 1
        row["kills"] += sum(k.outcome != "finished-first" for k in trial.kills)
        row["mid_work"] += trial.landed_mid_work
        row["before_work"] += sum(k.outcome == "before-work" for k in trial.kills)
        row["after_work"] += sum(k.outcome == "after-work" for k in trial.kills)
        row["lost"] += lost
        row["duplicated"] += duplicated
        row["stale_temp_files"] += stale
        for k, v in extra.items():
            row[k] += v

    def summary(self) -> str:
        total = {
            k: sum(r[k] for r in self.rows.values()) for k in ("trials", "kills", "mid_work", "lost", "duplicated")
        }
        per = "; ".join(f"{cmd}: " + ", ".join(f"{k}={v}" for k, v in r.items()) for cmd, r in self.rows.items())
        return (
            f"kill harness: {total['trials']} trials, {total['kills']} SIGKILLs, {total['mid_work']} mid-work, "
            f"items lost {total['lost']}, duplicated {total['duplicated']} | {per}"
        )


@pytest.fixture(scope="session")
def trial_log():
    log = TrialLog()
    yield log
    if log.rows:
        print("\n" + log.summary(), file=sys.__stderr__)
