"""Typed user-facing errors: each names the file:line or the key at fault and what to do."""

from __future__ import annotations


class PradaError(Exception):
    """Base class for errors the CLI prints as one clear line instead of a traceback."""


class DataError(PradaError):
    """A data file (JSONL, log, split) is malformed. Carries the location so users can fix it."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}{what}{message}")


class ConfigError(PradaError):
    """A config key or value is wrong; the message names the dotted key."""


class ChecksumError(PradaError):
    """A downloaded file does not match its pinned sha256."""
