"""OpenAIClient against hostile or broken servers (issue 15): redirects, huge and trickling replies, deep JSON,
a key echoed across the error-body cut, a NaN temperature."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import tracemalloc

import pytest
from fake_openai import FakeOpenAI

from prada.teacher.client import OpenAIClient, TeacherError

KEY = "sk-test-SECRET-5f3a9c0d-abcdef"  # 29 characters, like the key the campaign leaked
PROMPT = "Q: what is 2 + 3?\nA: Let's think step by step."


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def fast_client(url, **kw):
    kw = {"max_tries": 2, "timeout": 0.5, "backoff_base": 0.001, "backoff_max": 0.01, "seed": 0, **kw}
    return OpenAIClient("fake-model", base_url=url, **kw)


def _key_pieces(text: str, shortest: int = 8) -> list[str]:
    """Every piece of KEY of at least `shortest` characters that appears in text."""
    return [KEY[i:j] for i in range(len(KEY)) for j in range(i + shortest, len(KEY) + 1) if KEY[i:j] in text]


def test_redirect_is_refused_and_the_key_never_reaches_the_other_host():
    with FakeOpenAI() as other, FakeOpenAI(redirect=None) as endpoint:
        endpoint.redirect = other.url.replace("127.0.0.1", "localhost") + "/completions"
        client = fast_client(endpoint.url)
        with pytest.raises(TeacherError, match="redirect") as ei:
            client.complete([PROMPT], 16, 0.0)
    assert other.requests == [], "the client followed the redirect to another host"
    assert ei.value.fatal and len(endpoint.requests) == 1
    assert KEY not in str(ei.value)


@pytest.mark.parametrize("with_length", [True, False])
def test_huge_reply_is_capped_and_counts_as_a_retryable_failure(with_length):
    size = 2 << 30  # 2 GiB streamed (announced or not); the client must stop reading at its cap
    with FakeOpenAI(big_body=size, big_body_length=with_length) as srv:
        client = fast_client(srv.url)  # default cap: 8 MiB
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(TeacherError, match="larger than") as ei:
                client.complete([PROMPT], 16, 0.0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - t0
    assert not ei.value.fatal and len(srv.requests) == 2  # retried, then given up
    print(
        f"\n2 GiB reply (Content-Length {with_length}): peak traced memory {peak / 2**20:.1f} MiB, {elapsed:.2f} s for 2 tries",
        file=sys.__stderr__,
    )
    assert peak < 64 << 20


def assert_trickle_is_bounded_by_the_deadline(what: str, **server) -> None:
    """A server trickling ~170 bytes at 0.05 s each (8.5 s a reply, every byte inside the 0.5 s socket timeout)
    is given up after the 1 s deadline of each of 2 tries, retryably."""
    with FakeOpenAI(trickle_s=0.05, **server) as srv:
        client = fast_client(srv.url)
        client.deadline = 1.0
        t0 = time.monotonic()
        with pytest.raises(TeacherError, match="within 1") as ei:
            client.complete([PROMPT], 16, 0.0)
        elapsed = time.monotonic() - t0
    print(f"\ntrickling {what}: 2 tries given up after {elapsed:.2f} s (deadline 1 s a try)", file=sys.__stderr__)
    assert not ei.value.fatal and len(srv.requests) == 2
    assert elapsed < 3.5


def test_trickling_server_is_bounded_by_the_request_deadline():
    assert_trickle_is_bounded_by_the_deadline("server")


@pytest.fixture
def loopback_tls(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE), as (cert, key)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a loopback certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return str(cert), str(key)


def test_https_requests_work_and_a_trickle_is_bounded_by_the_deadline(loopback_tls):
    """The HTTPS connection class registers its socket with the deadline as the HTTP one does."""
    with FakeOpenAI(tls=loopback_tls) as srv:
        assert srv.url.startswith("https://")
        assert len(fast_client(srv.url).complete([PROMPT], 16, 0.0)) == 1  # the certificate path works
    assert_trickle_is_bounded_by_the_deadline("HTTPS server", tls=loopback_tls)


def test_deeply_nested_json_reply_is_a_retryable_failure():
    with FakeOpenAI(error_body="[" * 200_000 + "]" * 200_000, status=200) as srv:
        client = fast_client(srv.url)
        with pytest.raises(TeacherError, match="nested") as ei:
            client.complete([PROMPT], 16, 0.0)
    assert not ei.value.fatal and len(srv.requests) == 2


@pytest.mark.parametrize("status", [500, 400])
@pytest.mark.parametrize("offset", [300 - 28, 120 - 10, 200 - 5])
@pytest.mark.parametrize("pad", ["x", "\n"])
def test_key_echoed_across_the_error_body_cut_is_redacted(status, offset, pad, caplog):
    # The server echoes "Bearer KEY" so that the key starts `offset` bytes into the body: the
    # 300-byte read, the 120/200-character message cut must not leave a piece of it (whitespace
    # padding collapses in the message, so a key cut at byte 300 lands well inside it).
    caplog.set_level(logging.DEBUG, logger="prada.teacher")
    body = pad * (offset - len("Bearer ")) + "{auth} and more text after the key " * 3
    with FakeOpenAI(error_body=body, status=status) as srv:
        client = fast_client(srv.url)
        with pytest.raises(TeacherError) as ei:
            client.complete([PROMPT], 16, 0.0)
    assert srv.auth_headers == {f"Bearer {KEY}"}
    assert _key_pieces(str(ei.value)) == [] and _key_pieces(caplog.text) == []


def test_long_prefix_of_the_key_is_redacted():
    with FakeOpenAI(error_body="you sent " + KEY[:20] + " which is wrong", status=400) as srv:
        client = fast_client(srv.url)
        with pytest.raises(TeacherError) as ei:
            client.complete([PROMPT], 16, 0.0)
    assert KEY[:20] not in str(ei.value) and KEY[:8] not in str(ei.value)


@pytest.mark.parametrize("temperature", [math.nan, math.inf, -1.0])
def test_a_temperature_that_is_not_a_number_is_never_sent(temperature):
    with FakeOpenAI() as srv:
        client = fast_client(srv.url)
        with pytest.raises(TeacherError, match="temperature") as ei:
            client.complete([PROMPT], 16, temperature)
    assert ei.value.fatal and srv.requests == []


def test_concurrent_workers_share_no_deadline_state():
    # Each request has its own deadline: a slow request must not cut a healthy one short.
    with FakeOpenAI() as srv:
        client = fast_client(srv.url)
        client.deadline = 2.0
        out = []
        threads = [threading.Thread(target=lambda: out.append(client.complete([PROMPT], 16, 0.0))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert out == [[" 2 + 3 = 5."]] * 4


@pytest.mark.parametrize("value", ["nan", "inf", "-0.5"])
def test_teach_refuses_a_temperature_that_is_not_a_number(value, tmp_path, capsys):
    from prada.cli import main

    with pytest.raises(SystemExit) as ei:
        main(["teach", "--data", str(tmp_path), "--teacher", "openai:m", "--temperature", value])
    assert ei.value.code == 2 and "--temperature" in capsys.readouterr().err
