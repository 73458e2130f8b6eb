"""Keeping the provider's HTTP connections pooled after a streamed answer.

The openai SDK's (sync) stream stops reading at `data: [DONE]` and closes the
response. Over HTTP/1.1 the chunked body's last chunk is then still unread, so
httpx2 closes the connection rather than return it to the pool, and the next call
pays a new TCP and TLS handshake (openai-python issue #3440). The SDK's async stream
reads the rest for up to 0.1 s before closing; this transport does the same for the
sync client: when a response that ended with `[DONE]` is closed unfinished, the rest
of its body is read with the read timeout cut to DRAIN_SECONDS, and at most
DRAIN_BYTES of it. A server that holds the body open, or a response closed before
`[DONE]` (a cancel hanging up on the provider), closes the connection as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2

DRAIN_SECONDS = 0.1
DRAIN_BYTES = 64 * 1024
# The SDK's own client defaults, which a client given its own transport does not apply.
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
_DONE = b"[DONE]"
_TAIL = 32  # bytes of the body kept to see how it ended


class PoolingTransport(httpx2.HTTPTransport):
    def __init__(self, **options) -> None:
        options.setdefault("limits", LIMITS)
        super().__init__(**options)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        response.stream = _DrainOnClose(response.stream, request)
        return response


class _DrainOnClose(httpx2.SyncByteStream):
    def __init__(self, stream: httpx2.SyncByteStream, request: httpx2.Request) -> None:
        self._stream = stream
        self._request = request
        self._tail = b""
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._tail = (self._tail + chunk)[-_TAIL:]
            yield chunk
        self._ended = True

    def close(self) -> None:
        try:
            if not self._ended and self._tail.rstrip().endswith(_DONE):
                self._drain()
        finally:
            self._stream.close()

    def _drain(self) -> None:
        # httpcore2 takes each read's timeout from the request's extensions, which it
        # shares with this request: a new pass over the body reads with this one.
        timeouts = self._request.extensions.get("timeout") or {}
        self._request.extensions["timeout"] = {**timeouts, "read": DRAIN_SECONDS}
        deadline = time.monotonic() + DRAIN_SECONDS
        read = 0
        try:
            for chunk in self._stream:
                read += len(chunk)
                if read > DRAIN_BYTES or time.monotonic() > deadline:
                    return  # more than a body's end: closing drops the connection
        except (httpx2.TransportError, httpx2.StreamError):
            pass  # the connection is closed, as it would have been without the drain
