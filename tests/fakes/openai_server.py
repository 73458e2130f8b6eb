"""A local OpenAI-compatible HTTP server for tests, stdlib only.

It answers `POST /v1/chat/completions` (plain and SSE streaming) and
`GET /v1/models` closely enough for the real openai SDK to parse, and misbehaves
on request. Markers in the newest user message that has any (usually the prompt;
a JSON repair turn inherits them) choose the behaviour, so tests that
share one server cannot disturb each other:

    [[fail:429]]  [[fail:quota]]  [[fail:500]]  [[fail:503]]  [[fail:400]]  [[fail:401]]
    [[fail:content_filter]]  [[hang]]  [[slow:0.2]]  [[malformed]]  [[wrong-shape]]  [[invalid-json]]
    [[reply:exact text]]  [[finish:length]]  [[finish:content_filter]]
    [[reply-json:"text as a JSON string literal, escapes such as \\u0000 decoded"]]
    [[cut]]  (stream the first words of the reply, then drop the connection)
    [[linger:2]]  (send `data: [DONE]`, then hold the body open 2 s before its last chunk)
    [[close-after]]  (answer in full, then close the kept-alive connection unannounced,
                      as a server does with an idle one)

A trailing count, as in `[[fail:500:2]]` or `[[hang:1]]`, limits the marker to the
first N requests carrying that exact message; later ones get the normal reply.

Plain HTTP by default. Given a server-side `ssl.SSLContext` it speaks HTTPS, as
api.openai.com does, and `base_url` names `localhost` (when bound to 127.0.0.1), which
the context's certificate must cover; the client must trust that certificate's CA.

Run it by hand with `python -m tests.fakes.openai_server --port 8089`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

from workers.providers.schema_sample import sample_instance

HANG_LIMIT = 60.0  # a hung request gives up after this even if nobody stops the server
WORDS_PER_CHUNK = 3
MARKER = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
# Kinds whose arguments are fixed, so that one more integer argument is a count.
ARITY = {
    "fail": 1,
    "hang": 0,
    "cut": 0,
    "malformed": 0,
    "wrong-shape": 0,
    "invalid-json": 0,
    "slow": 1,
    "finish": 1,
    "linger": 1,
    "close-after": 0,
}

ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "429": (429, {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}),
    "quota": (
        429,
        {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        },
    ),
    "400": (400, {"message": "Invalid request (fake server)", "type": "invalid_request_error", "code": None}),
    "content_filter": (
        400,
        {
            "message": "The response was filtered: the prompt triggered the content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
        },
    ),
    "500": (
        500,
        {"message": "The server had an error while processing your request.", "type": "server_error"},
    ),
    "503": (503, {"message": "The engine is currently overloaded.", "type": "server_error"}),
}


@dataclass
class Behaviour:
    fail: str | None = None
    hang: bool = False
    cut: bool = False
    malformed: bool = False
    wrong_shape: bool = False  # JSON, but not a chat.completion.chunk
    invalid_json: bool = False
    slow: float = 0.0
    reply: str | None = None
    finish: str = "stop"
    linger: float = 0.0  # seconds between `[DONE]` and the body's last chunk
    close_after: bool = False


class FakeOpenAI:
    """A fake OpenAI server on a free port, serving from daemon threads; over TLS with
    `ssl_context` (a server-side context holding the certificate)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.requests: list[dict[str, Any]] = []
        self.connections = 0  # TCP connections accepted: how well clients keep theirs
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], int] = {}
        self._stopping = threading.Event()
        self._ids = count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self.ssl_context is None:
            return f"http://{self.host}:{self.port}/v1"
        # A host name, as the client checks the certificate against it.
        host = "localhost" if self.host == "127.0.0.1" else self.host
        return f"https://{host}:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        if self.ssl_context is None:
            server = ThreadingHTTPServer((self.host, self.port), _Handler)
        else:
            server = _TLSServer((self.host, self.port), _Handler, self.ssl_context)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hung and slow requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._counters.clear()
            self.connections = 0

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler ------------------------------------------------

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake{next(self._ids)}"

    def _behaviour(self, content: str) -> Behaviour:
        behaviour = Behaviour()
        for match in MARKER.finditer(content):
            marker = match.group(1)
            kind, _, rest = marker.partition(":")
            if kind == "reply":
                behaviour.reply = rest
                continue
            if kind == "reply-json":  # the reply as a JSON string literal: escapes allowed
                behaviour.reply = json.loads(rest)
                continue
            if kind not in ARITY:
                continue
            args = rest.split(":") if rest else []
            limit = args[ARITY[kind]] if len(args) > ARITY[kind] else ""
            if limit.isdigit() and not self._still_active(marker, content, int(limit)):
                continue
            if kind == "fail":
                behaviour.fail = args[0] if args else "500"
            elif kind == "hang":
                behaviour.hang = True
            elif kind == "cut":
                behaviour.cut = True
            elif kind == "malformed":
                behaviour.malformed = True
            elif kind == "wrong-shape":
                behaviour.wrong_shape = True
            elif kind == "invalid-json":
                behaviour.invalid_json = True
            elif kind == "slow":
                behaviour.slow = _seconds(args[0] if args else "")
            elif kind == "finish" and args:
                behaviour.finish = args[0]
            elif kind == "linger":
                behaviour.linger = _seconds(args[0] if args else "")
            elif kind == "close-after":
                behaviour.close_after = True
        return behaviour

    def _still_active(self, marker: str, content: str, limit: int) -> bool:
        with self._lock:
            seen = self._counters.get((marker, content), 0) + 1
            self._counters[(marker, content)] = seen
        return seen <= limit


class _TLSServer(ThreadingHTTPServer):
    """Wraps each connection it accepts in TLS; the handshake is made by the
    connection's own thread (`_Handler.handle`), so a slow client holds up no other."""

    def __init__(self, address: tuple[str, int], handler: type[_Handler], context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the SDK's connection pool is exercised
    server_version = "FakeOpenAI/1.0"

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.fake._connected()

    def handle(self) -> None:
        # The client hung up (a timeout, a cancel, a pooled connection closed), or over TLS
        # refused the certificate or dropped the connection: nothing to tell it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.do_handshake()
            super().handle()

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {
                "id": "fake-model",
                "object": "model",
                "created": 1700000000,
                "owned_by": "conveyor-tests",
            }
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_error(404, {"message": f"Unknown path {self.path}", "type": "invalid_request_error"})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, {"message": f"Unknown path {self.path}", "type": "invalid_request_error"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_error(
                400, {"message": "We could not parse the JSON body", "type": "invalid_request_error"}
            )
            return
        self.fake._record(body)
        self._complete(body)

    def _complete(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        content = _last_user_content(messages)
        behaviour = self.fake._behaviour(_marker_content(messages))
        if behaviour.fail is not None:
            self._fail(behaviour.fail)
            return
        if behaviour.hang:
            self._hang()
            return
        text = _reply_text(body, content, behaviour)
        usage = _usage(messages, text)
        if body.get("stream"):
            self._stream(body, text, usage, behaviour)
        else:
            self._respond(body, text, usage, behaviour)
        if behaviour.close_after:
            self.close_connection = True

    def _fail(self, what: str) -> None:
        if what == "401":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            # Like OpenAI, the message repeats the key; the provider must not pass it on.
            error = {"message": f"Incorrect API key provided: {token}.", "type": "invalid_request_error"}
            self._send_error(401, {**error, "code": "invalid_api_key"})
            return
        status, error = ERRORS.get(
            what, (int(what) if what.isdigit() else 500, {"message": f"Fake error {what}"})
        )
        headers = {"Retry-After": "1"} if what == "429" else {}
        self._send_error(status, error, headers)

    def _hang(self) -> None:
        """Send nothing until the client disconnects, the server stops, or HANG_LIMIT passes."""
        deadline = time.monotonic() + HANG_LIMIT
        while time.monotonic() < deadline and not self.fake._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            if readable and self._hung_up():
                break
        self.close_connection = True

    def _hung_up(self) -> bool:
        """Whether the client, which sends nothing while it waits, closed a readable connection."""
        if not isinstance(self.connection, ssl.SSLSocket):
            return not self.connection.recv(1, socket.MSG_PEEK)
        # TLS cannot peek. Whatever the client sends now (an alert closing the connection)
        # is not a request, so it can be read.
        try:
            return not self.connection.recv(1)
        except OSError:  # ssl.SSLError included: the connection is broken
            return True

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.fake._stopping.wait(seconds)

    def _respond(self, body: dict[str, Any], text: str, usage: dict[str, int], behaviour: Behaviour) -> None:
        self._pause(behaviour.slow)
        if behaviour.malformed:
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
            return
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "finish_reason": behaviour.finish, "logprobs": None}
        payload = self._envelope(body, "chat.completion") | {"choices": [choice], "usage": usage}
        if behaviour.cut:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self._send_json(200, payload)

    def _stream(self, body: dict[str, Any], text: str, usage: dict[str, int], behaviour: Behaviour) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        envelope = self._envelope(body, "chat.completion.chunk")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if include_usage:
            envelope["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return envelope | {"choices": [choice]}

        self._write_event(chunk({"role": "assistant", "content": "", "refusal": None}))
        if behaviour.malformed:
            self._pause(behaviour.slow)
            self._write_chunk(b"data: {this is not json\n\n")
        elif behaviour.wrong_shape:
            self._pause(behaviour.slow)
            self._write_event(envelope | {"choices": [{"index": 0, "delta": "not an object"}]})
        else:
            for piece in _pieces(text):
                self._pause(behaviour.slow)
                self._write_event(chunk({"content": piece}))
                if behaviour.cut:
                    self.close_connection = True  # hang up without ending the chunked body
                    return
            self._pause(behaviour.slow)
            self._write_event(chunk({}, behaviour.finish))
            if include_usage:
                self._write_event(envelope | {"choices": [], "usage": usage})
            self._write_chunk(b"data: [DONE]\n\n")
            self._pause(behaviour.linger)
        self._write_chunk(b"")  # the last chunk of a chunked body

    def _envelope(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            "id": self.fake._next_id(),
            "object": kind,
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
            "system_fingerprint": "fp_fake",
        }

    def _write_event(self, data: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(data).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _send_error(self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        error = {"type": "error", "param": None, "code": None} | error
        self._send_json(status, {"error": error}, headers)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_fake_{time.monotonic_ns()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _last_user_content(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _marker_content(messages: list[dict[str, Any]]) -> str:
    """The newest user message that carries a marker, so that a follow-up turn
    (a JSON repair request, say) behaves as the prompt that started it asked."""
    for message in reversed(messages):
        text = _text_of(message.get("content"))
        if message.get("role") == "user" and "[[" in text:
            return text
    return _last_user_content(messages)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _reply_text(body: dict[str, Any], content: str, behaviour: Behaviour) -> str:
    if behaviour.reply is not None:
        return behaviour.reply
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        if behaviour.invalid_json:
            return json.dumps({"unexpected": True})
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(sample_instance(schema))
    return "Echo: " + content


def _seconds(raw: str) -> float:
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _usage(messages: list[dict[str, Any]], text: str) -> dict[str, int]:
    prompt = estimate_tokens("".join(_text_of(message.get("content")) for message in messages))
    completion = estimate_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _pieces(text: str) -> list[str]:
    """Split text into chunks of a few words that join back to exactly `text`."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args()
    fake = FakeOpenAI(args.host, args.port).start()
    print(f"Fake OpenAI server at {fake.base_url} (Ctrl-C to stop)", flush=True)  # noqa: T201 - a CLI
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
