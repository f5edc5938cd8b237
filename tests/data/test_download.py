"""Downloads over real HTTP (a local ThreadingHTTPServer): checksum, cache, corrupted files, bad JSONL."""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prada.data.download import cache_path, fetch, sha256_file
from prada.data.ftcot12 import FILES, SOURCES, build_ftcot12
from prada.data.schema import read_examples
from prada.errors import ChecksumError, DataError, PradaError

SMALL = "coin_flip"


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def serve():
    """serve(folder) -> base URL of a real HTTP server on 127.0.0.1 for that folder, and its request log."""
    servers = []

    def start(folder: Path):
        requests: list[str] = []
        handler = functools.partial(type("H", (_Handler,), {"requests": requests}), directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", requests

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_fetch_downloads_once_verifies_and_caches(shared_data, serve, tmp_path):
    base, requests = serve(shared_data)
    cache = tmp_path / "cache"
    for rel in (SOURCES[SMALL].raw, SOURCES[SMALL].log, SOURCES[SMALL].split):
        got = fetch(f"{base}/{rel}", FILES[rel], cache, progress=False)
        assert got.parent == cache and got.read_bytes() == (shared_data / rel).read_bytes()
        assert sha256_file(got) == FILES[rel]
    assert len(requests) == 3
    fetch(f"{base}/{SOURCES[SMALL].raw}", FILES[SOURCES[SMALL].raw], cache, progress=False)
    assert len(requests) == 3  # served from the cache
    assert sorted(p.name for p in _files_in(cache)) == sorted(
        cache_path(f"{base}/{r}", FILES[r], cache).name
        for r in (SOURCES[SMALL].raw, SOURCES[SMALL].log, SOURCES[SMALL].split)
    )


def test_build_from_mirror_url_equals_local_build(shared_data, serve, tmp_path):
    base, requests = serve(shared_data)
    url_out, local_out, cache = tmp_path / "url", tmp_path / "local", tmp_path / "cache"
    s_url = build_ftcot12(url_out, source=base + "/", cache_dir=cache, progress=False, datasets=[SMALL])
    s_local = build_ftcot12(local_out, source=str(shared_data), progress=False, datasets=[SMALL])
    assert s_url == s_local and s_url["datasets"][SMALL]["n_train"] == 350
    for split in ("train", "test"):
        assert (url_out / SMALL / f"{split}.jsonl").read_bytes() == (local_out / SMALL / f"{split}.jsonl").read_bytes()
    n = len(requests)
    build_ftcot12(tmp_path / "again", source=base, cache_dir=cache, progress=False, datasets=[SMALL])
    assert len(requests) == n  # second build reads the cache only


def test_corrupted_download_raises_and_leaves_nothing(shared_data, serve, tmp_path):
    mirror = tmp_path / "mirror"
    rel = SOURCES[SMALL].raw
    (mirror / rel).parent.mkdir(parents=True)
    data = (shared_data / rel).read_bytes()
    (mirror / rel).write_bytes(data.replace(b'"answer": "yes"', b'"answer": "no"', 1))  # one flipped label
    base, _ = serve(mirror)
    cache = tmp_path / "cache"
    url = f"{base}/{rel}"
    with pytest.raises(ChecksumError) as err:
        fetch(url, FILES[rel], cache, progress=False)
    msg = str(err.value)
    assert url in msg and f"expected {FILES[rel]}" in msg and f"got {sha256_file(mirror / rel)}" in msg
    assert _files_in(cache) == []  # neither the file nor a partial/temp file
    with pytest.raises(ChecksumError):
        build_ftcot12(tmp_path / "out", source=base, cache_dir=cache, progress=False, datasets=[SMALL])
    assert _files_in(cache) == []
    assert not (tmp_path / "out" / SMALL).exists()


def test_corrupted_cache_entry_is_fetched_again(shared_data, serve, tmp_path):
    base, requests = serve(shared_data)
    rel, cache = SOURCES[SMALL].split, tmp_path / "cache"
    path = fetch(f"{base}/{rel}", FILES[rel], cache, progress=False)
    path.write_bytes(b"{}")
    assert fetch(f"{base}/{rel}", FILES[rel], cache, progress=False).read_bytes() == (shared_data / rel).read_bytes()
    assert len(requests) == 2


def test_missing_file_and_local_paths(shared_data, serve, tmp_path):
    base, _ = serve(tmp_path)
    with pytest.raises(PradaError, match="download failed"):
        fetch(f"{base}/nope.json", None, tmp_path / "cache", progress=False)
    assert _files_in(tmp_path / "cache") == []
    rel = SOURCES[SMALL].split
    assert fetch(str(shared_data / rel), FILES[rel], None) == shared_data / rel
    copy = tmp_path / "copy.json"
    shutil.copy(shared_data / rel, copy)
    copy.write_text(copy.read_text() + " ")
    with pytest.raises(ChecksumError, match="expected"):
        fetch(str(copy), FILES[rel], None)
    with pytest.raises(DataError, match="file not found"):
        fetch(str(tmp_path / "absent.json"), None, None)


def test_custom_jsonl_bad_line_names_file_line_and_field(tmp_path):
    f = tmp_path / "custom.jsonl"
    f.write_text(
        '{"question": "1+1?", "answer": "2", "answer_type": "number"}\n'
        '{"question": "2+2?", "answer": 4, "answer_type": "number"}\n'
    )
    with pytest.raises(DataError) as err:
        read_examples(f)
    assert (err.value.path, err.value.line, err.value.field) == (str(f), 2, "answer")
    assert str(err.value).startswith(f"{f}:2: field 'answer'")


def test_downloads_default_to_the_prada_cache(monkeypatch, tmp_path):
    from prada.data.download import default_cache_dir

    monkeypatch.setenv("PRADA_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "downloads"
