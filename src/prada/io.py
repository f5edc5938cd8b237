"""File I/O every stage shares: atomic writes (temp file + rename, so a kill never leaves half a file),
JSONL logs, folder locks, and the prada cache root."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no lock, one writer assumed
    fcntl = None  # type: ignore[assignment]


def cache_root() -> Path:
    """`$PRADA_CACHE` or `~/.cache/prada`: converted models, downloads, built data.

    An empty PRADA_CACHE counts as unset (not the working folder), `~` is expanded, and a value that
    is not a folder prada can write in (a file, /proc/...) is one clear error.
    """
    raw = os.environ.get("PRADA_CACHE", "")
    if not raw.strip():
        return Path.home() / ".cache" / "prada"
    root = Path(raw).expanduser().absolute()
    _check_cache_root(str(root), raw)
    return root


_CHECKED_ROOTS: set[str] = set()


def _check_cache_root(root: str, raw: str) -> None:
    """Create `root` and prove a folder can be made in it (once per process and path)."""
    from prada.errors import PradaError

    if root in _CHECKED_ROOTS:
        return
    try:
        os.makedirs(root, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(dir=root, prefix=".prada-probe-"))  # root may write where mkdir cannot (/proc)
    except OSError as e:
        what = "is not a folder" if os.path.exists(root) and not os.path.isdir(root) else f"is unusable ({e.strerror})"
        raise PradaError(
            f"PRADA_CACHE={raw!r} {what}; set PRADA_CACHE to a folder prada can write in (or unset it for "
            "~/.cache/prada)"
        ) from None
    _CHECKED_ROOTS.add(root)


def link_error(path: Path):
    """The one error for a symbolic link met where prada writes, deletes or chmods."""
    from prada.errors import PradaError

    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return PradaError(
        f"{path}: is a symbolic link{target}; prada never writes, deletes or changes modes through a link in its "
        "folders. Replace it with a real file or folder (or remove it), then rerun"
    )


def refuse_links(*paths: str | os.PathLike) -> None:
    """One error naming the first symbolic link among `paths` or anywhere inside those that are folders."""
    for top in map(Path, paths):
        if top.is_symlink():
            raise link_error(top)
        if top.is_dir():
            for folder, dirs, files in os.walk(top):  # followlinks=False: a linked folder is reported, not entered
                for name in sorted(dirs + files):
                    if os.path.islink(os.path.join(folder, name)):
                        raise link_error(Path(folder, name))


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """A binary file that appears at `path` only complete: written to a temp file in the same folder,
    fsync'd and renamed when the block ends; deleted if the block raises (a kill leaves only the temp)."""
    path = Path(path)
    if path.is_symlink():
        raise link_error(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and an fsync'd rename."""
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one complete line and fsync: an append-only log that a reader can trust line by line."""
    path = Path(path)
    if path.is_symlink():
        raise link_error(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        torn = not _ends_with_newline(f.fileno())
        # a kill mid-append leaves a line without its newline: start a fresh line instead of gluing onto it
        f.write(("\n" if torn else "") + json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(fd: int) -> bool:
    """True for an empty file or one whose last byte is a newline."""
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of a JSONL file a user or upstream gave.

    Strict: a line that is not UTF-8 or not JSON is a DataError naming path:line (compare
    `read_jsonl_tolerant`, for prada's own append-only logs).
    """
    from prada.errors import DataError

    path = str(path)
    try:
        f = open(path, "rb")
    except OSError as e:  # a folder, no permission, ...
        raise DataError(f"cannot read ({e.strerror or e}); give a JSONL file with one example a line", path) from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path, lineno) from None
            if not text.strip():
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON ({e.msg} at column {e.colno})", path, lineno) from None
            except ValueError as e:  # e.g. an integer of more than 4300 digits
                raise DataError(f"invalid JSON ({e})", path, lineno) from None
            except RecursionError:
                raise DataError("invalid JSON (nested too deeply)", path, lineno) from None


def read_jsonl_tolerant(path: str | os.PathLike) -> list[dict]:
    """Read an append-only JSONL log, dropping a torn last line left by a kill.

    Only the last line can be torn by a kill; a damaged line elsewhere is skipped too (its item is
    redone, so a cache or log never stops a run), but not silently: a warning names file and line.
    """
    rows: list[dict] = []
    p = Path(path)
    if not p.exists():
        return rows
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError, a 5000-digit integer, deep nesting
            row = None
        if isinstance(row, dict):  # every prada log line is an object; anything else is damage
            rows.append(row)
        elif i != last:  # a torn last line is the expected trace of a kill; anything else is reported
            logging.getLogger(__name__).warning("%s:%d: damaged line skipped (its item is redone)", p, i + 1)
    return rows


@contextmanager
def folder_lock(folder: str | os.PathLike, command: str, wait: bool = False, create: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing, or else not locked) while `command` works in it.

    A second prada process on the same folder gets one clear error instead of interleaving its
    writes (or, with `wait`, waits for the first). flock on the folder itself: no lock file is left
    behind, and a killed holder releases it.
    """
    from prada.errors import PradaError

    folder = Path(folder)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None or not folder.is_dir():
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise PradaError(
                f"{folder}: another prada process is using this folder; wait for it to finish (or stop it), "
                f"then rerun `{command}`"
            ) from None
        yield
    finally:
        os.close(fd)  # also releases the lock


def normal_permissions(*paths: str | os.PathLike) -> None:
    """Give files 0666 and folders 0777 under the umask, recursively: safetensors and temp-file writers
    create 0600 files, which another user (or a container running as one) cannot read."""
    refuse_links(*paths)  # os.chmod follows links: a linked private file would become readable
    umask = os.umask(0)
    os.umask(umask)
    for top in map(Path, paths):
        if not top.exists():
            continue
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (downloads, checkpoints and cached models are checked with it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
