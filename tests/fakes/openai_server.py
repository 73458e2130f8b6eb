"""A local OpenAI-compatible HTTP server for tests, stdlib only.

It answers `POST /v1/chat/completions` (plain and SSE streaming) and
`GET /v1/models` closely enough for the real openai SDK to parse, and misbehaves
on request: markers in the prompt choose how (tests/fakes/openai_script.py). The
Files and Batches endpoints the batch lane uses are tests/fakes/openai_batches.py's.

Plain HTTP by default. Given a server-side `ssl.SSLContext` it speaks HTTPS, as
api.openai.com does, and `base_url` names `localhost` (when bound to 127.0.0.1), which
the context's certificate must cover; the client must trust that certificate's CA.

Run it by hand with `python -m tests.fakes.openai_server --port 8089`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

from tests.fakes.openai_batches import BatchApiError, BatchStore
from tests.fakes.openai_script import (
    ERRORS,
    MARKER,
    Behaviour,
    Mix,
    Script,
    last_user_content,
    marker_content,
    pieces,
    reply_text,
    token_usage,
)

HANG_LIMIT = 60.0  # a hung request gives up after this even if nobody stops the server


class FakeOpenAI:
    """A fake OpenAI server on a free port, serving from daemon threads; over TLS with
    `ssl_context` (a server-side context holding the certificate)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        mix: Mix | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.mix = mix  # how marker-less requests behave; None: all answered at once
        # Set: every request hangs until it is cleared (a provider stalled for a while).
        self.stalled = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.api_keys: list[str] = []  # the bearer token of each of `requests`, in order
        self.connections = 0  # TCP connections accepted: how well clients keep theirs
        self._lock = threading.Lock()
        self.script = Script()  # what each request's markers ask for
        self.batches = BatchStore(self.script)  # the Files and Batches endpoints' state
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
            self.api_keys.clear()
            self.connections = 0
        self.script.reset()
        self.batches.reset()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler ------------------------------------------------

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _record(self, body: dict[str, Any], api_key: str = "") -> None:
        with self._lock:
            self.requests.append(body)
            self.api_keys.append(api_key)

    def _next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake{next(self._ids)}"


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
        path = self.path.rstrip("/")
        if path.startswith(("/v1/files/", "/v1/batches/")):
            self._batch_api("GET", path, b"")
        elif path == "/v1/models":
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
        path = self.path.rstrip("/")
        if path == "/v1/files" or path.startswith("/v1/batches"):
            self._batch_api("POST", path, raw)
            return
        if path != "/v1/chat/completions":
            self._send_error(404, {"message": f"Unknown path {self.path}", "type": "invalid_request_error"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_error(
                400, {"message": "We could not parse the JSON body", "type": "invalid_request_error"}
            )
            return
        self.fake._record(body, self.headers.get("Authorization", "").removeprefix("Bearer "))
        self._complete(body)

    def _batch_api(self, method: str, path: str, raw: bytes) -> None:
        store = self.fake.batches
        parts = path.split("/")[2:]  # ["files", id, "content"], ["batches", id, "cancel"] ...
        try:
            if method == "POST" and parts == ["files"]:
                self._send_json(200, store.upload(self.headers.get("Content-Type", ""), raw))
            elif method == "POST" and parts == ["batches"]:
                self._send_json(200, store.create(json.loads(raw or b"{}")))
            elif method == "POST" and len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel":
                self._send_json(200, store.cancel(parts[1]))
            elif method == "GET" and len(parts) == 2 and parts[0] == "batches":
                self._send_json(200, store.retrieve(parts[1]))
            elif method == "GET" and len(parts) == 2 and parts[0] == "files":
                self._send_json(200, store.file(parts[1]).as_json())
            elif method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
                self._send_raw(200, store.file(parts[1]).data, "application/octet-stream")
            else:
                raise BatchApiError(404, f"Unknown path {self.path}")
        except BatchApiError as error:
            self._send_error(error.status, error.error)
        except ValueError:
            self._send_error(
                400, {"message": "We could not parse the JSON body", "type": "invalid_request_error"}
            )

    def _complete(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        content = last_user_content(messages)
        markers = marker_content(messages)
        if self.fake.mix is not None and not MARKER.search(markers):
            behaviour = self.fake.mix.draw()
        else:
            behaviour = self.fake.script.behaviour(markers)
        if self.fake.stalled.is_set():
            self._hang(until_unstalled=True)
            return
        failure = behaviour.failure_for(body)
        if failure is not None:
            self._fail(failure)
            return
        if behaviour.hang:
            self._hang()
            return
        text = reply_text(body, content, behaviour)
        usage = token_usage(messages, text)
        if behaviour.latency:  # over the whole answer: spread over a stream's chunks
            chunks = len(pieces(text)) + 1 if body.get("stream") else 1
            behaviour.slow = behaviour.latency / chunks
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

    def _hang(self, until_unstalled: bool = False) -> None:
        """Send nothing until the client disconnects, the server stops, or HANG_LIMIT passes
        (or, for a stalled server, until it is no longer stalled)."""
        deadline = time.monotonic() + HANG_LIMIT
        while time.monotonic() < deadline and not self.fake._stopping.is_set():
            if until_unstalled and not self.fake.stalled.is_set():
                break
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
            for piece in pieces(text):
                self._pause(behaviour.slow)
                self._write_event(chunk({"content": piece}))
                if behaviour.stream_error:  # as OpenAI reports a failure after the stream began
                    self._write_event({"error": ERRORS[behaviour.stream_error][1]})
                    self._write_chunk(b"")  # and the body ends there
                    return
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
