"""Stopping a provider call that is blocked on the network, from another thread or greenlet.

A canceled job's call may be waiting for response headers or its next token for as
long as the provider takes. Its lease monitor (another thread, or another greenlet
under gevent) calls `Interrupt.interrupt()`, which shuts down the socket the call is
reading: a blocked read wakes up in either case (with EOF in a thread, with an error
under gevent), and the read then raises `Interrupted`. The streams of pooling.py read
under the current Interrupt (a context variable: one per thread or greenlet); with
none, reads are left alone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")


class Interrupted(BaseException):
    """The call was interrupted. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` between the socket and the provider (in the SDK, httpx2 or
    urllib3) can take it for a connection error, which would be retried. `sent`: the
    request had gone out (the call was reading its answer), so the provider may bill it."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__("sent" if sent else "not sent")
        self.sent = sent


class Interrupt:
    """One job's switch for stopping its provider call's reads; thrown once, it stays on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.interrupted = False  # written under the lock; read by a stream's every read
        self._reading: socket.socket | None = None

    def interrupt(self) -> None:
        """Stop the reads made under this Interrupt, now and from now on. Safe to call
        from any thread or greenlet, and more than once."""
        with self._lock:
            self.interrupted = True
            if self._reading is not None:
                # Under the lock, so the reader cannot close the socket (and the OS hand its
                # number to another connection) before it is shut down.
                with contextlib.suppress(OSError):  # already closed, or never connected
                    self._reading.shutdown(socket.SHUT_RDWR)

    def check(self, *, sent: bool = True) -> None:
        if self.interrupted:
            raise Interrupted(sent=sent)

    def read(self, sock: socket.socket | None, read: Callable[..., T], *args: Any) -> T:
        """`read(*args)`, one blocking read of `sock`: raises Interrupted instead of
        reading once interrupted, and instead of what the read returned or raised if
        interrupted meanwhile."""
        self.watch(sock)
        try:
            data = read(*args)
        except BaseException as error:
            if self.interrupted:
                raise Interrupted(sent=True) from error
            raise
        finally:
            self.unwatch(sock)
        self.check()
        return data

    def watch(self, sock: socket.socket | None) -> None:
        """Shut `sock` down on an interrupt from now until `unwatch(sock)`; raises
        Interrupted if already interrupted. For a streamed body, watched from its first
        read to its close: its reads (a token each) then need only look at `interrupted`
        after each, and take the lock not at all. The socket must be unwatched before it
        is closed or goes back to a pool, where another call would be shut down with it."""
        with self._lock:
            # Under the lock: an interrupt() either came first (raised here) or will find
            # this socket to shut down.
            self.check()
            self._reading = sock

    def unwatch(self, sock: socket.socket | None) -> None:
        with self._lock:
            if self._reading is sock:
                self._reading = None


current: ContextVar[Interrupt | None] = ContextVar("provider_interrupt", default=None)
