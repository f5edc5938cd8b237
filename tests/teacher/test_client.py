"""OpenAIClient against the fake server: routes, every fault kind, bounded retries, Retry-After, key hygiene."""

from __future__ import annotations

import logging
import time

import pytest
from fake_openai import FAULTS, FakeOpenAI

from prada.teacher.client import OpenAIClient, TeacherError, make_client, parse_teacher

KEY = "sk-test-SECRET-5f3a9c0d"
PROMPT = "Q: what is 2 + 3?\nA: Let's think step by step."


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def fast_client(url, chat=False, **kw):
    kw = {"max_tries": 4, "timeout": 0.5, "backoff_base": 0.001, "backoff_max": 0.01, "seed": 0, **kw}
    return OpenAIClient("fake-model", chat=chat, base_url=url, **kw)


def test_parse_teacher_spellings():
    assert parse_teacher("openai:gpt-3.5-turbo-instruct") == ("completions", "gpt-3.5-turbo-instruct")
    assert parse_teacher("openai-chat:gpt-4o-mini") == ("chat", "gpt-4o-mini")
    assert parse_teacher("openai:gpt-4o-mini?chat") == ("chat", "gpt-4o-mini")
    assert parse_teacher("hf:/models/x") == ("hf", "/models/x")
    for bad in ("gpt-4", "openai:", "vllm:x"):
        with pytest.raises(TeacherError):
            parse_teacher(bad)


@pytest.mark.parametrize("chat", [False, True])
def test_routes_and_auth_header(chat):
    with FakeOpenAI() as srv:
        client = fast_client(srv.url, chat=chat)
        out = client.complete(
            [PROMPT, PROMPT + " 2 + 3 = 5.\nTherefore, the answer (arabic numerals) is"], 32, 0.0, ["\nQ:"]
        )
    assert out == [" 2 + 3 = 5.", " 5."]
    assert {r["path"] for r in srv.requests} == {"/v1/chat/completions" if chat else "/v1/completions"}
    assert srv.auth_headers == {f"Bearer {KEY}"}


def test_base_url_from_env_and_without_path(monkeypatch):
    with FakeOpenAI() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url.removesuffix("/v1"))  # no path -> /v1 is added
        client = make_client("openai:fake-model", concurrency=2, max_tries=2)
        assert client.complete([PROMPT], 16, 0.0) == [" 2 + 3 = 5."]
    assert srv.requests[0]["path"] == "/v1/completions"


def test_missing_key_for_openai_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        OpenAIClient("gpt-4o-mini")


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried(fault):
    # Two forced faults, then a healthy answer: exactly three requests, and the right text.
    with FakeOpenAI(script=[fault, fault], retry_after=("0",), sleep_s=1.0) as srv:
        client = fast_client(srv.url, chat=(fault == "empty"))
        assert client.complete([PROMPT], 16, 0.0) == [" 2 + 3 = 5."]
    assert len(srv.requests) == 3
    assert srv.faults_injected == {fault: 2}


def test_always_failing_server_gives_up_after_exactly_max_tries(caplog):
    caplog.set_level(logging.DEBUG, logger="prada.teacher")
    with FakeOpenAI(status=503) as srv:
        client = fast_client(srv.url, max_tries=5)
        with pytest.raises(TeacherError, match="after 5 tries") as ei:
            client.complete([PROMPT], 16, 0.0)
    assert len(srv.requests) == 5
    assert not ei.value.fatal
    # The server echoed the Authorization header into its error body: it must be redacted.
    assert KEY not in str(ei.value) and KEY not in caplog.text and KEY not in repr(client)


def test_auth_failure_is_fatal_at_once_and_redacted():
    with FakeOpenAI(status=401) as srv:
        client = fast_client(srv.url)
        with pytest.raises(TeacherError) as ei:
            client.complete([PROMPT], 16, 0.0)
    assert ei.value.fatal and len(srv.requests) == 1
    assert KEY not in str(ei.value) and "OPENAI_API_KEY" in str(ei.value)


def test_retry_after_is_honoured():
    with FakeOpenAI(script=["429"], retry_after=("1",)) as srv:
        client = fast_client(srv.url)
        t0 = time.monotonic()
        assert client.complete([PROMPT], 16, 0.0) == [" 2 + 3 = 5."]
        elapsed = time.monotonic() - t0
    assert len(srv.requests) == 2
    assert elapsed >= 0.95  # backoff alone would be ~1 ms


def test_backoff_grows_exponentially_with_jitter(monkeypatch):
    sleeps = []
    with FakeOpenAI(status=500) as srv:
        client = fast_client(srv.url, max_tries=5, backoff_base=1.0, backoff_max=6.0)
        monkeypatch.setattr(client, "_sleep", sleeps.append)
        with pytest.raises(TeacherError):
            client.complete([PROMPT], 16, 0.0)
    assert len(sleeps) == 4  # no sleep after the last try
    for i, s in enumerate(sleeps):
        nominal = min(6.0, 2.0**i)
        assert 0.5 * nominal <= s <= 1.5 * nominal


def test_cancel_interrupts_the_backoff():
    import threading

    with FakeOpenAI(status=500) as srv:
        client = fast_client(srv.url, max_tries=3, backoff_base=30.0, backoff_max=30.0)
        threading.Timer(0.2, client.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(TeacherError, match="cancelled"):
            client.complete([PROMPT], 16, 0.0)
    assert time.monotonic() - t0 < 5 and len(srv.requests) == 1
