"""train_log.jsonl: one line per logged step, appended and fsync'd; trimmed back to the checkpoint on resume."""

from __future__ import annotations

from pathlib import Path

from prada.io import append_jsonl, atomic_write_jsonl, read_jsonl_tolerant

LOG_FIELDS = ("step", "lm_loss", "domain_loss", "lambda", "domain_acc", "lr", "tokens_per_s")


class TrainLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, row: dict) -> None:
        append_jsonl(self.path, {k: row.get(k) for k in LOG_FIELDS})

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after the checkpoint we resume from, so the log has no duplicates."""
        rows = [r for r in read_jsonl_tolerant(self.path) if r.get("step", 0) <= step]
        atomic_write_jsonl(self.path, rows)

    def rows(self) -> list[dict]:
        return read_jsonl_tolerant(self.path)
