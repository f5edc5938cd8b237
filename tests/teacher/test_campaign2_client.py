"""The second outside attack (issue 25) on the OpenAI client: an endpoint that ignores `stop` (item 16) and error
bodies carrying terminal escapes (item 17)."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI

from prada.teacher.client import OpenAIClient, TeacherError

KEY = "sk-test-SECRET-0b7e4d21-fedcba"
PROMPT = "Q: what is 2 + 3?\nA: Let's think step by step."


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _client(url: str) -> OpenAIClient:
    return OpenAIClient("fake-model", base_url=url, max_tries=1, timeout=2.0, backoff_base=0.001, seed=0)


def test_replies_are_cut_at_stop_strings_when_the_endpoint_ignores_stop():
    reply = {"choices": [{"index": 0, "text": " 2 + 3 = 5.\nQ: what is 7 + 1?\nA: 8", "finish_reason": "length"}]}
    with FakeOpenAI(error_body=json.dumps(reply), status=200) as srv:
        (text,) = _client(srv.url).complete([PROMPT], 32, 0.0, ["\nQ:"])
    assert text == " 2 + 3 = 5."


ESCAPES = "\x1b]0;pwned\x07 \x1b[2J\x1b[10;10H \x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07 \x9b31m \u202eevil"


@pytest.mark.parametrize("status", [400, 503])
def test_server_text_in_errors_has_no_terminal_control_characters(status):
    with FakeOpenAI(error_body=f"upstream says {ESCAPES} and {{auth}}", status=status) as srv:
        with pytest.raises(TeacherError) as ei:
            _client(srv.url).complete([PROMPT], 16, 0.0)
    message = str(ei.value)
    assert "upstream says" in message
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in message), repr(message)
    assert KEY not in message
