"""Fetch a data file once: download over http(s) into a cache, verify its sha256, rename atomically.

A file in the cache is always complete and verified: the download goes to a temp file in the cache
folder, is hashed while it streams, and is renamed into place only when the hash matches. On a
mismatch or any error the temp file is deleted, so a failed or killed download leaves nothing that
a later run could mistake for the real file.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from prada.errors import ChecksumError, DataError, PradaError
from prada.io import atomic_file, cache_root, sha256_file
from prada.progress import hidden

TIMEOUT_S = 60.0
_CHUNK = 1 << 16


def is_url(text: str) -> bool:
    return urlparse(str(text)).scheme in ("http", "https")


def cache_path(url: str, sha256: str | None, cache_dir: Path) -> Path:
    """Where `url` lives in the cache: keyed by its pinned hash (or the URL's hash when unpinned)."""
    name = Path(unquote(urlparse(url).path)).name or "download"
    key = sha256 if sha256 else hashlib.sha256(url.encode("utf-8")).hexdigest()
    return Path(cache_dir) / f"{key[:16]}-{name}"


def fetch(url_or_path: str, sha256: str | None, cache_dir: Path | None, progress: bool = True) -> Path:
    """Return a local path holding the file at `url_or_path`, verified against `sha256` when given.

    http(s) URLs are downloaded once into `cache_dir` (later calls reuse the verified copy); a local
    path is returned as it is, after checking the hash when one is given. Raises ChecksumError on a
    hash mismatch (nothing is left in the cache), DataError for a missing local file and PradaError
    when the download itself fails.
    """
    if not is_url(url_or_path):
        path = Path(url_or_path)
        if not path.is_file():
            raise DataError("file not found", str(path))
        if sha256 is not None:
            got = sha256_file(path)
            if got != sha256:
                raise ChecksumError(f"{path}: sha256 mismatch: expected {sha256}, got {got}")
        return path

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_path(url_or_path, sha256, cache_dir)
    if target.is_file():
        if sha256 is None or sha256_file(target) == sha256:
            return target
        target.unlink()  # a cached copy that no longer verifies: fetch it again
    with atomic_file(target, suffix=".part") as out:  # renamed into the cache only if the hash matches
        got = _download(url_or_path, out, target.name, progress)
        if sha256 is not None and got != sha256:
            raise ChecksumError(
                f"sha256 mismatch for {url_or_path}: expected {sha256}, got {got} "
                "(the file changed upstream or the download was corrupted; nothing was cached)"
            )
    return target


def default_cache_dir() -> Path:
    """Downloads live under the prada cache root (`$PRADA_CACHE`, else ~/.cache/prada)."""
    return cache_root() / "downloads"


def _download(url: str, out, label: str, progress: bool) -> str:
    """Stream `url` into the open binary file `out`; return the sha256 of what was written."""
    from tqdm.auto import tqdm

    h = hashlib.sha256()
    try:
        resp = urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 - scheme checked by is_url
    except (urllib.error.URLError, OSError) as e:
        raise PradaError(f"download failed: {url}: {e}") from None
    with resp:
        total = resp.headers.get("Content-Length")
        bar = tqdm(
            total=int(total) if total and total.isdigit() else None,
            unit="B",
            unit_scale=True,
            desc=f"download {label}",
            disable=hidden(progress),
            leave=False,
        )
        with bar:
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except OSError as e:
                    raise PradaError(f"download failed: {url}: {e}") from None
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    return h.hexdigest()
