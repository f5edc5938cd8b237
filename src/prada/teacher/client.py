"""Teacher back-ends behind one small seam: `complete(prompts, max_tokens, temperature, stop) -> list[str]`.

- `OpenAIClient`: an OpenAI-compatible HTTP endpoint (`/v1/completions` or `/v1/chat/completions`)
  over the standard library only, with timeouts and bounded retries (exponential backoff + jitter,
  Retry-After honoured). Parallelism comes from the caller's thread pool (`max_workers`).
- `HFClient`: a local transformers causal LM, batched, left-padded, greedy at T=0.

Teacher spellings (see docs/teacher.md): `openai:MODEL` (completions), `openai-chat:MODEL` or
`openai:MODEL?chat` (chat completions), `hf:PATH_OR_ID` (local model).
The API key is read from the environment only; it is never logged, stored or put in an error message.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

from prada.errors import PradaError

log = logging.getLogger("prada.teacher")

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class TeacherError(PradaError):
    """A teacher request failed for good. `fatal` errors (bad key, unknown model) stop the whole run."""

    def __init__(self, message: str, fatal: bool = False):
        self.fatal = fatal
        super().__init__(message)


class TeacherClient(Protocol):
    """Everything `teach` uses of a teacher back-end (OpenAIClient and HFClient both follow it)."""

    name: str
    batch_size: int  # prompts per `complete` call the caller should group
    max_workers: int  # `complete` calls the caller may run at once (threads)
    supports_n: bool  # True: `complete_n` is one request, so the caller groups the units by question

    def complete(
        self, prompts: list[str], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> list[str]:
        """One completion per prompt, in order. Raises TeacherError when a prompt cannot be answered."""
        ...

    def complete_n(
        self, prompt: str, n: int, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> list[str]:
        """`n` completions of one prompt (the diverse samples of one question). Raises TeacherError."""
        ...

    def cancel(self) -> None:
        """The run is ending: stop waiting between retries; later calls raise TeacherError."""
        ...


def parse_teacher(teacher: str) -> tuple[str, str]:
    """'openai:M' -> ('completions', M); 'openai-chat:M' or 'openai:M?chat' -> ('chat', M); 'hf:P' -> ('hf', P)."""
    kind, sep, rest = teacher.partition(":")
    if not sep or not rest:
        raise TeacherError(
            f"teacher {teacher!r}: expected openai:MODEL, openai-chat:MODEL or hf:PATH_OR_ID", fatal=True
        )
    if kind == "openai":
        if rest.endswith("?chat"):
            return "chat", rest[: -len("?chat")]
        return "completions", rest
    if kind == "openai-chat":
        return "chat", rest
    if kind == "hf":
        return "hf", rest
    raise TeacherError(f"teacher {teacher!r}: unknown kind {kind!r} (use openai:, openai-chat: or hf:)", fatal=True)


def make_client(teacher: str, *, concurrency: int = 8, max_tries: int = 6, **kwargs) -> TeacherClient:
    """Build the back-end a teacher string names (`hf:` resolves prada's model aliases).
    Extra keyword arguments go to the client's constructor."""
    kind, target = parse_teacher(teacher)
    if kind == "hf":
        from prada.model_aliases import resolve_model

        return HFClient(resolve_model(target), name=teacher, **kwargs)  # prada's aliases: tiny-random, smollm2-135m
    return OpenAIClient(
        target, chat=(kind == "chat"), name=teacher, concurrency=concurrency, max_tries=max_tries, **kwargs
    )


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP
# ---------------------------------------------------------------------------------------------


class _Retry(Exception):
    """A transient failure: try again after `delay` seconds (None = use the backoff schedule)."""

    def __init__(self, reason: str, delay: float | None = None):
        self.reason, self.delay = reason, delay
        super().__init__(reason)


_FATAL_STATUS = {
    401: "the API key was refused (check OPENAI_API_KEY)",
    403: "access denied",
    404: "model or endpoint not found (check OPENAI_BASE_URL and the model name)",
}
_RETRY_STATUS = {408, 409, 425, 429}
_ERROR_BODY_READ = 4096  # bytes of an error body read for the message (redacted before any cut)
_KEY_PIECE = 8  # a run of this many characters of the key anywhere in a server's text is redacted


def check_temperature(temperature: float) -> None:
    """A NaN, infinite or negative temperature is never sent (json.dumps would write a bare NaN)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise TeacherError(f"temperature must be a finite number >= 0, got {temperature!r}", fatal=True)


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without C0/C1 control characters and bidirectional overrides: a server's error body may carry
    escapes that set the window title, move the cursor or write the clipboard (OSC 52) when printed."""
    return _CONTROLS.sub(" ", text)


def redact_key(text: str, key: str | None) -> str:
    """`text` with the key and every run of >= 8 of its characters (a cut or partial echo) replaced by ***."""
    if not key:
        return text
    text = text.replace(key, "***")
    if len(key) < _KEY_PIECE:
        return text
    grams = {key[i : i + _KEY_PIECE] for i in range(len(key) - _KEY_PIECE + 1)}
    out, i = [], 0
    while i < len(text):
        if text[i : i + _KEY_PIECE] in grams:
            j = i + _KEY_PIECE
            while j < len(text) and text[i : j + 1] in key:
                j += 1
            out.append("***")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: urllib would resend the Authorization header to whatever host it names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError(code), handled as a fatal error


class _Deadline:
    """Shuts a request's socket down once its total time is spent.

    A socket timeout bounds each read only: a server that trickles a byte every few seconds resets it
    forever. The sockets are found through `_watch`, called by the connection classes below.
    """

    _current = threading.local()  # the deadline of the request this thread is making

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        _Deadline._current.value = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _Deadline._current.value = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # a blocked recv returns at once
        except OSError:
            pass


def _watch(sock: socket.socket) -> None:
    deadline = getattr(_Deadline._current, "value", None)
    if deadline is not None:
        deadline.watch(sock)


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        _watch(self.sock)


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=self._context)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIClient:
    """OpenAI-compatible completions / chat-completions client over urllib.

    Base URL from OPENAI_BASE_URL (default https://api.openai.com/v1; a URL without a path gets /v1),
    key from OPENAI_API_KEY (optional for a custom base URL, e.g. a local vLLM server).
    Each prompt is tried at most `max_tries` times; transient failures (429, 5xx, 408/409/425,
    timeouts, connection errors, invalid or truncated JSON, empty choices) wait
    `min(backoff_max, backoff_base * 2**i) * U(0.5, 1.5)` seconds, or the server's Retry-After
    when it is longer (capped at `retry_after_max`). A reply over `max_response_bytes` and a request
    that has not finished within `deadline` seconds (headers and body; `timeout` bounds each read)
    are transient failures too. Redirects are refused (fatal): the key goes to the configured
    address only.
    """

    batch_size = 1
    supports_n = True  # several samples of one prompt in one request; False once the endpoint ignores `n`

    def __init__(
        self,
        model: str,
        *,
        chat: bool = False,
        name: str | None = None,
        base_url: str | None = None,
        concurrency: int = 8,
        max_tries: int = 6,
        timeout: float = 60.0,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        retry_after_max: float = 120.0,
        seed: int | None = None,
        max_response_bytes: int = 8 << 20,
        deadline: float = 300.0,
    ):
        if max_tries < 1:
            raise TeacherError(f"max_tries must be >= 1, got {max_tries}", fatal=True)
        self.model, self.chat = model, chat
        self.name = name or (f"openai-chat:{model}" if chat else f"openai:{model}")
        base = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TeacherError(
                f"OPENAI_BASE_URL must be an http(s) URL like https://api.openai.com/v1, got {base!r}", fatal=True
            )
        if parts.path in ("", "/"):
            base += "/v1"
        self.url = base + ("/chat/completions" if chat else "/completions")
        # The key lives only in this attribute and in the Authorization header of each request.
        self._key = os.environ.get("OPENAI_API_KEY") or None
        if self._key is None and parts.netloc == urllib.parse.urlsplit(DEFAULT_BASE_URL).netloc:
            raise TeacherError("OPENAI_API_KEY is not set (needed for api.openai.com)", fatal=True)
        self.max_workers = max(1, int(concurrency))
        self.max_tries = int(max_tries)
        self.timeout, self.backoff_base, self.backoff_max = timeout, backoff_base, backoff_max
        self.retry_after_max = retry_after_max
        self.max_response_bytes, self.deadline = int(max_response_bytes), float(deadline)
        self._rng = random.Random(seed)
        host = (parts.hostname or "").lower()
        # Loopback servers are never reached through an environment proxy.
        handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") else []
        self._opener = urllib.request.build_opener(*handlers, _NoRedirect, _HTTPHandler, _HTTPSHandler)
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Stop waiting between retries (a run is ending); this client then refuses further work."""
        self._stop.set()

    def _sleep(self, delay: float) -> None:
        if self._stop.wait(delay):
            raise TeacherError("cancelled")

    def __repr__(self) -> str:  # no key in reprs either
        return f"OpenAIClient(model={self.model!r}, url={self.url!r}, chat={self.chat})"

    def _redact(self, text: str) -> str:
        """Server text fit to print: terminal controls dropped (then the key redacted, so no key is rejoined)."""
        return redact_key(printable(text), self._key)

    def complete(
        self, prompts: list[str], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> list[str]:
        check_temperature(temperature)
        return [self._complete_one(p, max_tokens, temperature, stop)[0] for p in prompts]

    def complete_n(
        self, prompt: str, n: int, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> list[str]:
        """`n` completions of one prompt in one request (`n=`); an endpoint that answers fewer choices
        (it ignores `n`) gets the rest one request each, and this client stops asking it for `n`."""
        check_temperature(temperature)
        texts = self._complete_one(prompt, max_tokens, temperature, stop, n) if self.supports_n else []
        if len(texts) < n:
            self.supports_n = False
            texts += [self._complete_one(prompt, max_tokens, temperature, stop)[0] for _ in range(n - len(texts))]
        return texts[:n]

    def _payload(self, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None, n: int = 1) -> bytes:
        body: dict = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature, "n": n}
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if stop:
            body["stop"] = stop
        return json.dumps(body).encode("utf-8")

    def _complete_one(
        self, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None, n: int = 1
    ) -> list[str]:
        """The reply's choices (in `index` order) to one request asking for `n`."""
        data = self._payload(prompt, max_tokens, temperature, stop, n)
        last = "no attempt"
        if self._stop.is_set():
            raise TeacherError("cancelled")
        for attempt in range(self.max_tries):
            try:
                # an endpoint may ignore `stop` (the HF client cuts at it too)
                return [_cut_at_stop(text, stop) for text in self._request(data)]
            except _Retry as r:
                last = r.reason
                if attempt + 1 >= self.max_tries:
                    break
                delay = min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + self._rng.random())
                if r.delay is not None:
                    delay = max(delay, min(r.delay, self.retry_after_max))
                log.debug("teacher request failed (%s); retry %d/%d in %.2fs", last, attempt + 2, self.max_tries, delay)
                self._sleep(delay)
        raise TeacherError(f"{self.url}: gave up after {self.max_tries} tries; last error: {last}")

    def _request(self, data: bytes) -> list[str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        deadline = _Deadline(self.deadline)
        try:
            with deadline, self._opener.open(req, timeout=self.timeout) as resp:
                raw = self._read_capped(resp)
        except urllib.error.HTTPError as e:
            if deadline.expired:
                raise _Retry(f"no complete response within {self.deadline:g}s") from None
            try:
                body = e.read(_ERROR_BODY_READ).decode("utf-8", "replace")
            except Exception:  # the error body is only for the message
                body = ""
            body = " ".join(self._redact(body).split())  # redact first: a cut could split the key
            if 300 <= e.code < 400:
                where = self._redact(str(e.headers.get("Location") if e.headers else None))
                raise TeacherError(
                    f"{self.url}: HTTP {e.code} redirect to {where} refused (the API key is only ever sent to "
                    "OPENAI_BASE_URL); set OPENAI_BASE_URL to the address that answers",
                    fatal=True,
                ) from None
            if e.code in _RETRY_STATUS or e.code >= 500:
                raise _Retry(
                    f"HTTP {e.code} {body[:120]}".strip(),
                    _retry_after(e.headers.get("Retry-After") if e.headers else None),
                ) from None
            hint = _FATAL_STATUS.get(e.code)
            raise TeacherError(f"{self.url}: HTTP {e.code}: {hint or body[:200]}", fatal=hint is not None) from None
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            # URLError, socket timeouts, resets, IncompleteRead, RemoteDisconnected ...
            if deadline.expired:
                raise _Retry(f"no complete response within {self.deadline:g}s") from None
            reason = getattr(e, "reason", None) or e
            raise _Retry(self._redact(f"{type(e).__name__}: {reason}")) from None
        if deadline.expired:
            raise _Retry(f"no complete response within {self.deadline:g}s")
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _Retry(f"invalid JSON in response ({e})") from None
        except RecursionError:
            raise _Retry("invalid JSON in response (nested too deeply)") from None
        return self._text(obj)

    def _read_capped(self, resp) -> bytes:
        """The body, or a retryable failure once it passes max_response_bytes (never read whole)."""
        cap = self.max_response_bytes
        length = resp.headers.get("Content-Length")
        if length and length.strip().isdigit() and int(length) > cap:
            raise _Retry(f"response larger than {cap} bytes (Content-Length {int(length)})")
        raw = resp.read(cap + 1)
        if len(raw) > cap:
            raise _Retry(f"response larger than {cap} bytes")
        return raw

    def _text(self, obj: object) -> list[str]:
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise _Retry("response has no choices")
        texts = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0):
            message = choice.get("message") if self.chat else None
            text = (message.get("content") if isinstance(message, dict) else None) if self.chat else choice.get("text")
            if not isinstance(text, str):
                raise _Retry("response choice has no text")
            texts.append(text)
        return texts


# ---------------------------------------------------------------------------------------------
# Local transformers model
# ---------------------------------------------------------------------------------------------


class HFClient:
    """A local causal LM (path or hub id) with batched, left-padded generation; greedy at T=0.

    `trust_remote_code` stays off: only architectures built into transformers load.
    Stop strings end a row's generation as soon as it writes one (`generate(stop_strings=...)`), and
    the text is cut before it.
    """

    max_workers = 1  # generation batches run one at a time; batching gives the throughput
    supports_n = False  # samples are rows of a batch: the caller fills batches across questions

    def __init__(self, path: str, *, name: str | None = None, batch_size: int = 8, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name or f"hf:{path}"
        self.batch_size = max(1, int(batch_size))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
            self.model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, trust_remote_code=False, use_safetensors=True
            )
        except (OSError, ValueError) as e:
            raise TeacherError(f"hf:{path}: cannot load model/tokenizer: {e}", fatal=True) from None
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"  # generation continues from the right edge of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._torch = torch
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Refuse further batches (a run is ending); a batch already generating finishes."""
        self._stop.set()

    def complete_n(
        self, prompt: str, n: int, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> list[str]:
        """`n` completions of one prompt: one batch of `n` copies (independent samples at T > 0)."""
        return self.complete([prompt] * n, max_tokens, temperature, stop)

    def complete(
        self, prompts: list[str], max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> list[str]:
        check_temperature(temperature)
        if self._stop.is_set():
            raise TeacherError("cancelled")
        torch = self._torch
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=True).to(self.device)
        kwargs: dict = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if stop:  # stop decoding there instead of spending the whole budget and cutting afterwards
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)  # (B, prompt_len + new)
        new = out[:, enc["input_ids"].shape[1] :]  # (B, new): left padding puts every prompt end at the same column
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [_cut_at_stop(t, stop) for t in texts]


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        i = text.find(s)
        if i >= 0:
            text = text[:i]
    return text
