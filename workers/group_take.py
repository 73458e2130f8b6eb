"""The takes of jobs that reach a gevent worker together, made in one statement.

A job begins with its take: a compare-and-set on its row that commits on its own
(`jobs.start`), so that a second delivery of the same message cannot run it too. A
prefork process runs one job at a time and takes it directly. A gevent AI worker
process (`-P gevent`) holds hundreds of jobs, and taken one by one each would be a pool
check-out, a round trip and a commit, paid on the process's one core and on
Postgres's. There one thread of the process (a greenlet) makes every take: it waits for
the first, and while its statement runs the takes that come meanwhile queue up; the
next statement takes them all. A take that finds it idle goes at once, so a job that
arrives alone waits for nothing; the batch grows with the load only, as a database's
group commit does.

Each delivery gets its own answer: its job's row, or None when it must not run it (the
caller settles those one by one, as `jobs.start` does). Two deliveries of one job in the
same batch get the row once. A statement that fails raises its error in every take it
held, as each would have raised its own.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import uuid
from typing import Any

from db.repositories import jobs
from db.session import standalone

logger = logging.getLogger(__name__)

MOST = 500  # takes in one statement: its parameter list stays a few KB


class _Take:
    __slots__ = ("done", "error", "job_id", "row")

    def __init__(self, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        self.done = threading.Event()
        self.row: Any = None
        self.error: BaseException | None = None


class GroupTaker:
    """The process's taker. Its thread starts with the first take."""

    def __init__(self, *, lease_seconds: int, max_attempts: int) -> None:
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self._waiting: queue.SimpleQueue[_Take] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def take(self, job_id: uuid.UUID) -> Any:
        """The job's row if this delivery took it; None if it must not run it here."""
        take = _Take(job_id)
        self._waiting.put(take)
        self._start()
        take.done.wait()
        if take.error is not None:
            raise take.error
        return take.row

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="job-takes", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < MOST:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            self.take_all(batch)

    def take_all(self, batch: list[_Take]) -> None:
        """One statement for the batch; every take in it is answered, whatever happens."""
        try:
            with standalone() as connection:
                taken = jobs.start_many(
                    connection,
                    job_ids=[take.job_id for take in batch],
                    lease_seconds=self.lease_seconds,
                    max_attempts=self.max_attempts,
                )
            for take in batch:
                take.row = taken.pop(take.job_id, None)  # a second delivery in the batch: None
        except BaseException as error:
            for take in batch:
                take.error = error
            if not isinstance(error, Exception):
                raise
        finally:
            for take in batch:
                take.done.set()


_taker: GroupTaker | None = None


def under_gevent() -> bool:
    """Whether this process runs its tasks as greenlets (the worker's `-P gevent`
    monkey-patches the standard library before any task runs)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def take(job_id: uuid.UUID, *, lease_seconds: int, max_attempts: int) -> Any:
    """Take a job for this delivery: with the others arriving together under gevent,
    directly otherwise. The row, or None (then settle it: `jobs.settle_unstarted`)."""
    global _taker
    if not under_gevent():
        with standalone() as connection:
            taken = jobs.start_many(
                connection, job_ids=[job_id], lease_seconds=lease_seconds, max_attempts=max_attempts
            )
        return taken.get(job_id)
    if _taker is None or (_taker.lease_seconds, _taker.max_attempts) != (lease_seconds, max_attempts):
        _taker = GroupTaker(lease_seconds=lease_seconds, max_attempts=max_attempts)
    return _taker.take(job_id)
