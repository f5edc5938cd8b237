"""Append-only teacher cache: DATA_DIR/.teacher_cache/<teacher-slug>.jsonl, one fsync'd line per finished sample.

A line is written only after both Zero-shot-CoT stages of one (item, sample) succeeded, so a killed
run loses at most the samples in flight. On open, a torn last line (kill mid-write) is cut off and
that sample is simply redone; completed keys are never redone nor written twice. One writer at a
time: the file is locked (flock) while a run holds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

from prada.io import read_jsonl_tolerant, refuse_links
from prada.teacher.client import TeacherError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no lock, single writer assumed
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("prada.teacher")

CACHE_DIRNAME = ".teacher_cache"


def teacher_slug(teacher: str) -> str:
    """File-name-safe form of a teacher string, e.g. 'openai:gpt-4o-mini' -> 'openai_gpt-4o-mini'."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", teacher).strip("_.") or "teacher"
    if len(slug) > 80:  # long local paths: keep it readable and unique
        slug = slug[:60] + "-" + hashlib.sha1(teacher.encode("utf-8")).hexdigest()[:12]
    return slug


def cache_path(data_dir: str | os.PathLike, teacher: str) -> Path:
    return Path(data_dir) / CACHE_DIRNAME / f"{teacher_slug(teacher)}.jsonl"


def sample_key(dataset: str, item_id: str, sample: int, temperature: float, question: str) -> str:
    """Identity of one teacher sample. The question hash makes an edited question a new key."""
    qhash = hashlib.sha1(question.encode("utf-8")).hexdigest()[:10]
    return f"{dataset}/{item_id}#{sample}@T{float(temperature):g}:{qhash}"


def _well_typed(rec: dict) -> bool:
    """A cache record as `teach` writes it: text rationale and answer text, answer text or None (a missing
    field reads as empty)."""
    return (
        isinstance(rec.get("rationale", ""), str)
        and isinstance(rec.get("answer_text", ""), str)
        and (rec.get("answer") is None or isinstance(rec.get("answer"), str))
    )


class TeacherCache:
    """Open with `with TeacherCache(path) as cache:`; `cache.records` maps key -> record."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self._fd: int | None = None

    def __enter__(self) -> "TeacherCache":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        refuse_links(self.path.parent, self.path)  # a kill's torn line is cut: never in a link's target
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TeacherError(
                    f"{self.path}: another `prada teach` is writing this cache; wait for it or stop it", fatal=True
                ) from None
        self._fd = fd
        with open(self.path, "rb") as f:
            raw = f.read()
        if raw and not raw.endswith(b"\n"):
            # Torn last line from a kill mid-write: cut it so the next append starts a clean line.
            keep = raw.rfind(b"\n") + 1
            os.ftruncate(fd, keep)
            os.fsync(fd)
        self.records = {}
        for rec in read_jsonl_tolerant(self.path):
            if not isinstance(rec.get("key"), str):
                continue
            if not _well_typed(rec):  # an edited or foreign line: its sample is asked again, not trusted
                log.warning("%s: cache line of %s has wrong-typed fields; that sample is redone", self.path, rec["key"])
                continue
            self.records.setdefault(rec["key"], rec)

    def append(self, record: dict) -> None:
        """Durably add one finished sample; a key already present is not written again."""
        if self._fd is None:
            raise RuntimeError("TeacherCache.append before open()")
        key = record["key"]
        if key in self.records:
            return
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:  # O_APPEND: each write lands at the end, in one piece for normal line sizes
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.records[key] = record

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the flock
            self._fd = None
