"""A webhook receiver for tests, stdlib only: records every request it gets and
answers 200 unless told otherwise (a status N times, a redirect, a slow answer).

    receiver = WebhookReceiver().start()
    receiver.answer(500)                               # the next request gets a 500
    receiver.answer(302, location=receiver.url("/elsewhere"))
    receiver.answer(200, delay=1.0)                    # answer after a second
    WebhookReceiver(fail_every=10)                     # 500 to every tenth new event's first delivery
    request = receiver.wait_for(1)[0]
    payload = request.verify(secret)                   # Standard Webhooks check, as a receiver does
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def verify(self, secret: str) -> Any:
        """The parsed payload; raises WebhookVerificationError if the signature is wrong."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass(frozen=True)
class Answer:
    status: int
    location: str | None = None
    delay: float = 0.0


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, fail_every: int = 0) -> None:
        self._lock = threading.Lock()
        self._answers: deque[Answer] = deque()
        self._requests: list[Received] = []
        # A flaky receiver: the first delivery of every `fail_every`-th event (by webhook-id)
        # gets a 500, so that event is delivered again; its redeliveries are answered.
        self.fail_every = fail_every
        self._events: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._handle()

            def do_GET(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                answer = receiver._record(
                    Received(
                        method=self.command,
                        path=self.path,
                        headers={name.lower(): value for name, value in self.headers.items()},
                        body=body,
                    )
                )
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    if answer.location:
                        self.send_header("Location", answer.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):  # the sender gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, *, times: int = 1, location: str | None = None, delay: float = 0.0) -> None:
        """Answer the next `times` requests like this (then 200 again)."""
        with self._lock:
            self._answers.extend(Answer(status, location, delay) for _ in range(times))

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()
            self._requests.clear()
            self._events.clear()

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}")
            time.sleep(0.02)
        return self.requests

    def _record(self, request: Received) -> Answer:
        with self._lock:
            self._requests.append(request)
            if self._answers:
                return self._answers.popleft()
            event = request.headers.get("webhook-id")
            if self.fail_every and event and event not in self._events:
                self._events.add(event)
                if len(self._events) % self.fail_every == 0:
                    return Answer(500)
            return Answer(200)
