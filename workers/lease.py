"""Keeps running jobs' leases alive and notices cancel requests: one monitor per process.

A job holds a `Lease` while its provider call runs. One background thread per
worker process (a greenlet under the gevent pool) looks after every job the process
holds: twice a second it reads all their cancel flags in one Redis MGET, and it
renews the leases that are due in one transaction. A process holding 500 calls costs
Redis two reads a second, not a thousand, and starting a job starts no thread. A job
is only reaped when its worker is really gone; the stream loop reads the flags that
the monitor sets from memory (`check`). A call still waiting for its first token (or
its next one) is not in that loop: the monitor interrupts it (interrupts.py), and the
provider raises Canceled with the text it had.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import Token

from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from workers import cancellation, job_stream
from workers.providers import interrupts
from workers.providers.base import Canceled, Completion

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.5


class LeaseLost(Exception):
    """The job is no longer ours (reaped or finished elsewhere); stop without writing."""


class Lease:
    """One running job, as the process's monitor sees it. Use as a context manager
    around the provider call."""

    def __init__(
        self,
        job_id: uuid.UUID,
        *,
        lease_seconds: int,
        expected_chars: int,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self.on_text = on_text  # where each streamed piece goes on to (the job's delta events)
        self.lease_seconds = lease_seconds
        self.renew_every = max(lease_seconds / 3, 1.0)
        self.renew_at = 0.0
        self.expected_chars = max(expected_chars, 1)
        self.chars = 0
        self.cancel_requested = False  # set by the monitor
        self.lease_lost = False  # set by the monitor
        self.interrupt = interrupts.Interrupt()  # the provider call's, made current on entry
        self._token: Token[interrupts.Interrupt | None] | None = None

    def __enter__(self) -> Lease:
        self.renew_at = time.monotonic() + self.renew_every
        self._token = interrupts.current.set(self.interrupt)
        _monitor().add(self)
        return self

    def __exit__(self, exc_type: object, error: BaseException | None, traceback: object) -> None:
        _monitor().discard(self)
        interrupts.current.reset(self._token)
        if self.lease_lost and isinstance(error, Canceled):
            # Interrupted because the job is no longer ours: nothing may be written for it.
            raise LeaseLost(str(self.job_id)) from error

    def cancel(self) -> None:
        """The job was canceled: stop its provider call, even one waiting for a token."""
        self.cancel_requested = True
        self.interrupt.interrupt()

    def lose_lease(self) -> None:
        self.lease_lost = True
        self.interrupt.interrupt()

    def on_delta(self, text: str) -> None:
        """Called by the provider for each streamed piece of text, which then goes on to
        `on_text`. A token each: the flags are looked at here and `check` called only
        when one is up, and the piece handed on without a closure between."""
        self.chars += len(text)
        if self.interrupt.interrupted:  # thrown by cancel() and lose_lease()
            self.check()
        if self.on_text is not None:
            self.on_text(text)

    def check(self) -> None:
        if self.lease_lost:
            raise LeaseLost(str(self.job_id))
        if self.cancel_requested:
            raise Canceled(Completion(text="", model=""))

    @property
    def progress(self) -> int:
        return min(95, self.chars * 100 // self.expected_chars)


class Monitor:
    """The process's watcher of its running jobs. Its thread starts with the first job
    and sleeps on an event while the process holds none."""

    def __init__(self, poll_seconds: float = CANCEL_POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self.pid = os.getpid()
        self._leases: set[Lease] = set()
        self._lock = threading.Lock()
        self._busy = threading.Event()  # set while at least one job is held
        self._thread: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            self._busy.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="job-leases", daemon=True)
                self._thread.start()

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)
            if not self._leases:
                self._busy.clear()

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._leases)

    def _run(self) -> None:
        while True:
            self._busy.wait()
            time.sleep(self.poll_seconds)
            leases = self.held()
            if leases:
                self.tick(leases, time.monotonic())

    def tick(self, leases: list[Lease], now: float) -> None:
        """One round: every job's cancel flag, then the leases that are due. A failure
        of either is logged and tried again next round; neither stops the other."""
        try:
            flags = cancellation.are_requested(get_redis(), [lease.job_id for lease in leases])
            for lease, requested in zip(leases, flags, strict=True):
                if requested:
                    lease.cancel()
        except Exception:
            logger.warning("heartbeat: could not read %d jobs' cancel flags", len(leases), exc_info=True)
        due = [lease for lease in leases if now >= lease.renew_at and not lease.lease_lost]
        if due:
            try:
                self._renew(due, now)
            except Exception:
                logger.warning("heartbeat: could not renew %d jobs' leases", len(due), exc_info=True)

    def _renew(self, due: list[Lease], now: float) -> None:
        with session_scope() as session:
            states = [
                jobs.renew_lease(
                    session, job_id=lease.job_id, lease_seconds=lease.lease_seconds, progress=lease.progress
                )
                for lease in due
            ]
        redis = get_redis()
        for lease, state in zip(due, states, strict=True):
            if state is None:  # reaped or finished elsewhere
                lease.lose_lease()
                continue
            lease.renew_at = now + lease.renew_every
            if state.cancel_requested:
                lease.cancel()
            job_stream.publish(redis, lease.job_id, job_stream.PROGRESS, {"progress": lease.progress})


_current: Monitor | None = None
_current_lock = threading.Lock()


def _monitor() -> Monitor:
    """This process's monitor (a forked pool process makes its own: threads do not
    survive a fork)."""
    global _current
    monitor = _current
    if monitor is None or monitor.pid != os.getpid():
        with _current_lock:
            if _current is None or _current.pid != os.getpid():
                _current = Monitor()
            monitor = _current
    return monitor
