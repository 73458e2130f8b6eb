"""The provider's HTTP transport: the SDK's httpx2 client, carried over urllib3's connections.

The openai SDK sends every request through an httpx2 `Client`, whose default transport
(httpcore2, parsing HTTP/1.1 with h11) makes an event object, a state-machine step and
several generator hops for each chunk of a chunked body. A streamed answer is a chunk a
token, and h11's work alone for a chunk was more than a streamed token's whole budget
(issue 28; bench/HISTORY.md). httpx2's documented transport interface
(`BaseTransport.handle_request`) lets another HTTP/1.1 client carry the requests the
SDK builds: urllib3 (over the standard library's http.client), which reads a chunk
with a line read and a sized read. The SDK still builds every request (auth, headers,
timeouts), checks every status and raises its own errors; this module moves bytes and
turns urllib3's errors into httpx2's, which the SDK maps to `APIConnectionError` and
`APITimeoutError` as before.

What it adds to urllib3:

- A canceled job's call stops (interrupts.py): a connection is not opened and a request
  not sent under an interrupted Interrupt, and a read of the response (its headers, or
  each chunk of its body) is made under the Interrupt, which shuts the socket down to
  wake it.
- Connections go back to the pool after a streamed answer. The SDK's (sync) stream
  stops reading at `data: [DONE]` and closes the response with the chunked body's last
  chunk still unread; closed unfinished, the connection could not be reused and the
  next call would pay a new TCP and TLS handshake (openai-python issue #3440). When a
  response that ended with `[DONE]` is closed unfinished, the rest of its body is read
  with the socket's timeout cut to DRAIN_SECONDS, and at most DRAIN_BYTES of it; a
  server that holds the body open, or a response closed before `[DONE]` (a cancel
  hanging up on the provider), closes the connection.
- One pool per host, keeping up to KEEP_IDLE idle connections, so that a gevent worker
  holding hundreds of calls reuses connections rather than open (against a real
  provider: handshake) a new one for most calls. Connections beyond it are opened as
  needed and closed when done. Whether an idle connection is still open (the server may
  have closed it) is asked with the blocking module's poll even under gevent
  (`db.sockets`), whose patched poll goes through the event loop for every look.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx2
import urllib3
from urllib3 import exceptions as errors
from urllib3.connection import HTTPConnection, HTTPSConnection

from db.sockets import has_input
from workers.providers import interrupts

DRAIN_SECONDS = 0.1
DRAIN_BYTES = 64 * 1024
KEEP_IDLE = 1000  # per host; the SDK's own client allows 1,000 connections
READ_SIZE = 64 * 1024  # a body sent without chunks is read as it arrives, up to this a read
_DONE = b"[DONE]"
_TAIL = 32  # bytes of the body looked at to see how it ended


class PoolingTransport(httpx2.BaseTransport):
    def __init__(self, *, keep_idle: int = KEEP_IDLE) -> None:
        self._context = httpx2.create_ssl_context()  # the SDK's CA store and TLS settings, loaded once
        self._keep_idle = keep_idle
        self._pools: dict[tuple[str, str, int], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        interrupt = interrupts.current.get()
        if interrupt is not None:  # a canceled job's call sends nothing
            interrupt.check(sent=False)
        pool = self._pool(request.url)
        timeouts = request.extensions.get("timeout") or {}
        try:
            response = pool.urlopen(
                request.method,
                request.url.raw_path.decode("ascii"),
                body=_body(request),
                headers=_headers(request),
                retries=False,  # tenacity, in the provider, is the one retry policy
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,  # httpx2 decodes the body as the headers say
                timeout=urllib3.Timeout(connect=timeouts.get("connect"), read=timeouts.get("read")),
            )
        except (errors.HTTPError, OSError) as error:
            raise _transport_error(error, request) from error
        reason = (response.reason or "").encode("latin-1")
        return httpx2.Response(
            response.status,
            # As bytes: http.client read them as latin-1, and httpx2 would encode str
            # values again as ASCII, which a value that is not ASCII would fail.
            headers=[
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()
            ],
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    def _pool(self, url: httpx2.URL) -> urllib3.HTTPConnectionPool:
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = self._new_pool(*key)
        return pool

    def _new_pool(self, scheme: str, host: str, port: int) -> urllib3.HTTPConnectionPool:
        if scheme == "https":
            return _TLSPool(host, port, maxsize=self._keep_idle, block=False, ssl_context=self._context)
        if scheme == "http":
            return _Pool(host, port, maxsize=self._keep_idle, block=False)
        raise httpx2.UnsupportedProtocol(f"the provider's URL must be http or https, not {scheme}")

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def _headers(request: httpx2.Request) -> dict[str, str] | urllib3.HTTPHeaderDict:
    """The request's headers for urllib3, from their raw bytes: `multi_items()` looks up
    the headers' encoding again for every name and value it decodes. A plain dict unless
    a name repeats (which only a multi-valued dict carries)."""
    raw = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
    headers = dict(raw)
    return headers if len(headers) == len(raw) else urllib3.HTTPHeaderDict(raw)


def _body(request: httpx2.Request) -> bytes | Iterator[bytes]:
    """The request's body: its bytes, or (an upload not read into memory) its stream,
    which urllib3 sends as it iterates, framed by the request's Content-Length."""
    try:
        return request.content
    except httpx2.RequestNotRead:
        return iter(request.stream)  # type: ignore[arg-type]


class _Interruptible:
    """A connection that checks the current Interrupt before it connects, waits for the
    response's headers under it, and asks whether it is still open without gevent's loop."""

    sock: socket.socket | None

    def connect(self) -> None:
        interrupt = interrupts.current.get()
        if interrupt is not None:
            interrupt.check(sent=False)
        super().connect()  # type: ignore[misc]

    def getresponse(self):
        interrupt = interrupts.current.get()
        if interrupt is None:
            return super().getresponse()  # type: ignore[misc]
        return interrupt.read(self.sock, super().getresponse)  # type: ignore[misc]

    @property
    def is_connected(self) -> bool:
        sock = self.sock
        return sock is not None and sock.fileno() >= 0 and not has_input(sock.fileno())


class _Connection(_Interruptible, HTTPConnection):
    pass


class _TLSConnection(_Interruptible, HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _Body(httpx2.SyncByteStream):
    """A response's body as it arrives: a chunk a read (a token of a streamed answer).
    Under an Interrupt its socket is watched from the first read to the close."""

    def __init__(self, response: urllib3.HTTPResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request
        self._reads = response.read_chunked(decode_content=False) if response.chunked else _reads(response)
        self._last = self._before_last = b""  # how the body ended: kept, not copied, per chunk
        self._ended = False
        self._closed = False
        self._watched: tuple[interrupts.Interrupt, socket.socket | None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        interrupt = interrupts.current.get()
        try:
            if interrupt is not None:
                sock = self._socket()
                interrupt.watch(sock)
                self._watched = interrupt, sock
            for chunk in self._reads:
                if interrupt is not None and interrupt.interrupted:
                    raise interrupts.Interrupted(sent=True)
                self._before_last, self._last = self._last, chunk
                yield chunk
        except (errors.HTTPError, OSError) as error:
            if interrupt is not None and interrupt.interrupted:  # woken by the interrupt's shutdown
                raise interrupts.Interrupted(sent=True) from error
            raise _transport_error(error, self._request) from error
        finally:
            self._unwatch()
        self._ended = True

    def close(self) -> None:
        if self._closed:  # once, however often the response is closed
            return
        self._closed = True
        self._unwatch()  # before the socket is closed or pooled
        try:
            tail = (self._before_last[-_TAIL:] + self._last)[-_TAIL:]
            if not self._ended and tail.rstrip().endswith(_DONE):
                self._drain()
        finally:
            if not self._ended:
                self._response.close()  # the rest unread: the connection cannot carry another request
            self._response.release_conn()

    def _unwatch(self) -> None:
        if self._watched is not None:
            (interrupt, sock), self._watched = self._watched, None
            interrupt.unwatch(sock)

    def _drain(self) -> None:
        sock = self._socket()
        if sock is None:
            return
        deadline = time.monotonic() + DRAIN_SECONDS
        read = 0
        try:
            sock.settimeout(DRAIN_SECONDS)
            for chunk in self._reads:
                read += len(chunk)
                if read > DRAIN_BYTES or time.monotonic() > deadline:
                    return  # more than a body's end: closing drops the connection
        except (errors.HTTPError, OSError):
            return  # the connection is closed, as it would have been without the drain
        self._ended = True

    def _socket(self) -> socket.socket | None:
        connection = self._response.connection
        return getattr(connection, "sock", None)


def _reads(response: urllib3.HTTPResponse) -> Iterator[bytes]:
    """A body without chunks (sized, or ended by the server's close), as it arrives."""
    while chunk := response.read1(READ_SIZE, decode_content=False):
        yield chunk


def _transport_error(error: BaseException, request: httpx2.Request) -> httpx2.TransportError:
    """urllib3's (or the socket's) error as the httpx2 error the SDK maps: a timeout to
    APITimeoutError, the rest to APIConnectionError."""
    kind: Callable[..., httpx2.TransportError]
    if isinstance(error, (errors.NewConnectionError, errors.SSLError, errors.NameResolutionError)):
        kind = httpx2.ConnectError  # NewConnectionError is also a ConnectTimeoutError
    elif isinstance(error, errors.ConnectTimeoutError):
        kind = httpx2.ConnectTimeout
    elif isinstance(error, (errors.TimeoutError, TimeoutError)):
        kind = httpx2.ReadTimeout
    elif isinstance(error, errors.ProtocolError):
        kind = httpx2.RemoteProtocolError
    else:
        kind = httpx2.ReadError
    return kind(str(error) or type(error).__name__, request=request)
