"""The provider's HTTP transport: connections pooled after a streamed answer, in pools
small enough to stay cheap when a gevent worker holds hundreds of calls.

The openai SDK's (sync) stream stops reading at `data: [DONE]` and closes the
response. Over HTTP/1.1 the chunked body's last chunk is then still unread, so
httpx2 closes the connection rather than return it to the pool, and the next call
pays a new TCP and TLS handshake (openai-python issue #3440). The SDK's async stream
reads the rest for up to 0.1 s before closing; this transport does the same for the
sync client: when a response that ended with `[DONE]` is closed unfinished, the rest
of its body is read with the read timeout cut to DRAIN_SECONDS, and at most
DRAIN_BYTES of it. A server that holds the body open, or a response closed before
`[DONE]` (a cancel hanging up on the provider), closes the connection as before.

httpcore2's pool walks all its connections, and probes each idle one's socket, on
every request and every response closed: with a few hundred calls in flight in one
pool that walk would take much of a gevent AI worker's CPU. Requests therefore go to
the least busy of SHARDS pools (one TLS context between them; the first on a tie, so
a process making one call at a time keeps reusing one connection), each keeping
enough idle connections (LIMITS) that a worker holding hundreds of calls reuses them
rather than open a new one for most calls, which against a real provider is a TLS
handshake each. The probe itself (is an idle connection's socket readable, i.e.
closed by the server?) is made with the blocking module's poll even under gevent
(`db.sockets`), whose patched poll goes through the event loop for every probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpcore2
import httpx2

from db.sockets import has_input
from workers import compat
from workers.providers import interrupts

DRAIN_SECONDS = 0.1
DRAIN_BYTES = 64 * 1024
SHARDS = 16
# Per pool. The SDK's own client allows 1,000 connections and keeps 100 idle.
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=32)
_DONE = b"[DONE]"
_TAIL = 32  # bytes of the body looked at to see how it ended


class PoolingTransport(httpx2.BaseTransport):
    def __init__(self, *, shards: int = SHARDS, limits: httpx2.Limits = LIMITS) -> None:
        context = httpx2.create_ssl_context()  # loading the CA store once, not per pool
        backend = _Backend()
        self._pools = [_transport(context, limits, backend) for _ in range(shards)]
        self._busy = [0] * shards  # requests each pool has open
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        with self._lock:
            shard = min(range(len(self._pools)), key=self._busy.__getitem__)
            self._busy[shard] += 1
        try:
            response = self._pools[shard].handle_request(request)
        except BaseException:
            self._done(shard)
            raise
        response.stream = _DrainOnClose(response.stream, request, on_close=lambda: self._done(shard))
        return response

    def _done(self, shard: int) -> None:
        with self._lock:
            self._busy[shard] -= 1

    def close(self) -> None:
        for pool in self._pools:
            pool.close()


def _transport(context, limits: httpx2.Limits, backend: httpcore2.NetworkBackend) -> httpx2.HTTPTransport:
    transport = httpx2.HTTPTransport(verify=context, limits=limits)
    compat.use_network_backend(transport, backend)
    return transport


class _Backend(httpcore2.SyncBackend):
    def connect_tcp(self, *args, **kwargs) -> httpcore2.NetworkStream:
        interrupt = interrupts.current.get()
        if interrupt is not None:  # a canceled job's call opens no connection
            interrupt.check(sent=False)
        return _Stream(super().connect_tcp(*args, **kwargs))


class _Stream(httpcore2.NetworkStream):
    """httpcore2's connection, but "is it readable?" is answered by db.sockets, and reads
    and writes stop under an interrupted Interrupt (interrupts.py)."""

    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        interrupt = interrupts.current.get()
        if interrupt is None:
            return self._stream.read(max_bytes, timeout)
        return interrupt.read(self._stream.get_extra_info("socket"), self._stream.read, max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        interrupt = interrupts.current.get()
        # A request cut short is not one the provider runs. An empty write (how h11 ends a
        # body of known length) sends nothing: the request went out with the write before.
        if interrupt is not None and buffer:
            interrupt.check(sent=False)
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None, timeout: float | None = None):
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str):
        if info != "is_readable":
            return self._stream.get_extra_info(info)
        sock = self._stream.get_extra_info("socket")
        return sock is None or sock.fileno() < 0 or has_input(sock.fileno())


class _DrainOnClose(httpx2.SyncByteStream):
    def __init__(
        self, stream: httpx2.SyncByteStream, request: httpx2.Request, *, on_close: Callable[[], None]
    ) -> None:
        self._stream = stream
        self._request = request
        self._on_close: Callable[[], None] | None = on_close
        self._last = self._before_last = b""  # how the body ended: kept, not copied, per chunk
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._before_last, self._last = self._last, chunk
            yield chunk
        self._ended = True

    def close(self) -> None:
        try:
            tail = (self._before_last[-_TAIL:] + self._last)[-_TAIL:]
            if not self._ended and tail.rstrip().endswith(_DONE):
                self._drain()
        finally:
            try:
                self._stream.close()
            finally:
                if self._on_close is not None:  # once, however often the response is closed
                    self._on_close, on_close = None, self._on_close
                    on_close()

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
        except (httpx2.TransportError, httpx2.StreamError, interrupts.Interrupted):
            # The connection is closed, as it would have been without the drain. Interrupted:
            # the call was stopped after its answer was complete, which then stands.
            pass
