"""A small OpenAI-compatible server for tests: rule-based answers and seeded fault injection.

Binds 127.0.0.1 on a free port; `with FakeOpenAI(...) as srv:` starts and always stops it.
Rules (stage 1 -> stage 2):
  "what is A + B?"           -> " A + B = C."                 -> " C."   (a "(hard)" question gets C+1: wrong)
  "is N even?"               -> " N is even." / " N is odd."  -> " Yes." / " No."
  "which is largest? (A) 3 (B) 9 (C) 4" -> " The largest is 9, which is (B)." -> " (B)."
Faults (drawn per request with probability `fault_rate` from a seeded RNG, or forced by `script`
for the first requests): 429 (Retry-After from `retry_after`), 500, timeout (sleep `sleep_s`
before answering), truncated (half the JSON, consistent Content-Length), short (Content-Length
larger than the body, then close), invalid (not JSON), empty (no choices), reset (close without
a response). Every request is recorded: path, prompt, Authorization header, injected fault.
`n` (several choices of one prompt) is honoured unless `honour_n=False`.
Hostile modes (every request): `redirect` (answer 302 to that URL), `error_body` (status `status`
with this body; `{auth}` becomes the Authorization header it got), `big_body` (a 200 whose body is
this many bytes of JSON-looking junk, streamed, with a Content-Length if `big_body_length`), `trickle_s` (a 200 sent one byte every that many seconds).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "timeout", "truncated", "short", "invalid", "empty", "reset")

_ARITH = re.compile(r"what is (-?\d+) ([-+*]) (-?\d+)\?", re.IGNORECASE)
_PARITY = re.compile(r"is (\d+) even\?", re.IGNORECASE)
_PICK = re.compile(r"\(([A-E])\) (-?\d+)")


def rationale_for(question: str) -> str:
    m = _ARITH.search(question)
    if m:
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        c = a + b if op == "+" else a - b if op == "-" else a * b
        if "(hard)" in question:
            c += 1
        return f" {a} {op} {b} = {c}."
    m = _PARITY.search(question)
    if m:
        n = int(m.group(1))
        return f" {n} is {'even' if n % 2 == 0 else 'odd'}."
    opts = _PICK.findall(question)
    if opts:
        letter, value = max(opts, key=lambda o: int(o[1]))
        return f" The largest is {value}, which is ({letter})."
    return " I am not sure."


def answer_for(rationale: str) -> str:
    if m := re.search(r"= (-?\d+)\.$", rationale):
        return f" {m.group(1)}."
    if rationale.endswith("is even."):
        return " Yes."
    if rationale.endswith("is odd."):
        return " No."
    if m := re.search(r"which is \(([A-E])\)\.$", rationale):
        return f" ({m.group(1)})."
    return " unknown."


def respond(prompt: str) -> str:
    """The fake teacher: stage-2 prompts carry "Therefore"; everything else is stage 1."""
    if "\nTherefore" in prompt:
        rationale = prompt.split("Let's think step by step.", 1)[-1].split("\nTherefore", 1)[0].strip()
        return answer_for(rationale)
    question = prompt.split("Q: ", 1)[-1].split("\nA:", 1)[0]
    return rationale_for(question)


class FakeOpenAI:
    def __init__(
        self,
        fault_rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        seed: int = 0,
        script: list[str] | None = None,
        retry_after: tuple[str, ...] = ("0", "1"),
        sleep_s: float = 1.5,
        delay: float = 0.0,
        status: int | None = None,
        max_requests: int = 5000,
        redirect: str | None = None,
        error_body: str | None = None,
        big_body: int = 0,
        big_body_length: bool = True,
        trickle_s: float = 0.0,
        honour_n: bool = True,
        tls: tuple[str, str] | None = None,
    ):
        self.tls = tls  # (certificate file, key file): serve HTTPS on loopback
        self.big_body_length = big_body_length
        self.honour_n = honour_n  # False: answer one choice whatever `n` asks, as some servers do
        self.redirect, self.error_body, self.big_body, self.trickle_s = redirect, error_body, big_body, trickle_s
        self.fault_rate, self.faults, self.retry_after = fault_rate, faults, retry_after
        self.script = list(script or [])
        self.sleep_s, self.delay, self.status, self.max_requests = sleep_s, delay, status, max_requests
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests: list[dict] = []  # one per request: path, prompt, auth, fault
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- recording ------------------------------------------------------------------------------
    @property
    def faults_injected(self) -> Counter:
        return Counter(r["fault"] for r in self.requests if r["fault"])

    @property
    def prompt_counts(self) -> Counter:
        return Counter(r["prompt"] for r in self.requests)

    @property
    def auth_headers(self) -> set:
        return {r["auth"] for r in self.requests}

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                fake._handle(self)

            def do_GET(self):  # a client that follows a redirect comes back with a GET
                fake._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.handle_error = lambda request, address: None  # clients that hung up are expected
        if self.tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- one request ----------------------------------------------------------------------------
    def _draw_fault(self) -> str | None:
        if self.script:
            return self.script.pop(0) or None
        if self.fault_rate and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.faults)
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = {}
        chat = h.path.rstrip("/").endswith("/chat/completions")
        if chat:
            msgs = body.get("messages") or [{}]
            prompt = msgs[-1].get("content", "")
        else:
            prompt = body.get("prompt", "")
        with self._lock:
            over = len(self.requests) >= self.max_requests
            fault = None if over else self._draw_fault()
            n = body.get("n", 1) if self.honour_n and isinstance(body.get("n", 1), int) else 1
            self.requests.append(
                {"path": h.path, "prompt": prompt, "auth": h.headers.get("Authorization"), "fault": fault, "n": n}
            )
            retry_after = self._rng.choice(self.retry_after)
        if self.delay:
            time.sleep(self.delay)
        try:
            if self._hostile(h):
                return
            if over:
                return self._send(h, 410, {"error": {"message": "fake server request budget spent"}})
            if h.path.rstrip("/") not in ("/v1/completions", "/v1/chat/completions"):
                return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
            if self.status is not None:
                # Echo the auth header back: a client must not copy it into its own messages.
                return self._send(
                    h, self.status, {"error": {"message": f"forced status; you sent {h.headers.get('Authorization')}"}}
                )
            text = respond(prompt)
            if chat:
                payload = {
                    "object": "chat.completion",
                    "choices": [
                        {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        for i in range(n)
                    ],
                }
            else:
                payload = {
                    "object": "text_completion",
                    "choices": [{"index": i, "text": text, "finish_reason": "stop"} for i in range(n)],
                }
            if fault == "429":
                return self._send(h, 429, {"error": {"message": "rate limited"}}, {"Retry-After": retry_after})
            if fault == "500":
                return self._send(h, 500, {"error": {"message": "internal error"}})
            if fault == "timeout":
                time.sleep(self.sleep_s)
                return self._send(h, 200, payload)
            if fault == "truncated":
                data = json.dumps(payload).encode()
                return self._send_raw(h, 200, data[: len(data) // 2])
            if fault == "short":
                data = json.dumps(payload).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data[: len(data) // 2])
                h.close_connection = True
                return
            if fault == "invalid":
                return self._send_raw(h, 200, b"<html>upstream hiccup</html>")
            if fault == "empty":
                return self._send(h, 200, {"object": "text_completion", "choices": []})
            if fault == "reset":
                h.close_connection = True
                return
            return self._send(h, 200, payload)
        except OSError:  # the client gave up (timeout) and closed the socket
            pass

    def _hostile(self, h: BaseHTTPRequestHandler) -> bool:
        """Serve the hostile mode, if one is set; True when it answered."""
        if self.redirect:
            h.send_response(302)
            h.send_header("Location", self.redirect)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return True
        if self.error_body is not None:
            body = self.error_body.replace("{auth}", str(h.headers.get("Authorization")))
            self._send_raw(h, self.status or 500, body.encode())
            return True
        if self.big_body:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            if self.big_body_length:
                h.send_header("Content-Length", str(self.big_body))
            h.close_connection = True  # without a length the body ends when the connection closes
            h.end_headers()
            head, chunk = b'{"choices": [', b" " * (1 << 20)
            h.wfile.write(head)
            sent = len(head)
            while sent < self.big_body:  # streamed: the server never holds the body
                part = chunk[: self.big_body - sent]
                h.wfile.write(part)
                sent += len(part)
            return True
        if self.trickle_s:
            body = b'{"choices": [{"index": 0, "text": " slow.", "finish_reason": "stop"}]}'
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            data = head.encode() + body  # status line and headers trickle too
            for i in range(len(data)):
                h.wfile.write(data[i : i + 1])
                h.wfile.flush()
                time.sleep(self.trickle_s)
            return True
        return False

    @staticmethod
    def _send(h, code: int, obj: dict, headers: dict | None = None) -> None:
        FakeOpenAI._send_raw(h, code, json.dumps(obj).encode(), headers)

    @staticmethod
    def _send_raw(h, code: int, data: bytes, headers: dict | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
