"""Keeps a running job's lease alive and notices a cancel request.

A background thread renews the lease while the provider call runs (deltas or
not), so a job is only reaped when its worker is really gone. It also polls the
cancel flag twice a second; the stream loop reads the result from memory.
"""

from __future__ import annotations

import logging
import threading
import uuid

from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from workers import cancellation, events
from workers.providers.base import Canceled, Completion

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.5


class LeaseLost(Exception):
    """The job is no longer ours (reaped or finished elsewhere); stop without writing."""


class Heartbeat:
    def __init__(self, job_id: uuid.UUID, *, lease_seconds: int, expected_chars: int) -> None:
        self.job_id = job_id
        self.lease_seconds = lease_seconds
        self.expected_chars = max(expected_chars, 1)
        self.chars = 0
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def on_delta(self, text: str) -> None:
        """Called by the provider for each streamed piece of text."""
        self.chars += len(text)
        self.check()

    def check(self) -> None:
        if self.lease_lost.is_set():
            raise LeaseLost(str(self.job_id))
        if self.cancel_requested.is_set():
            raise Canceled(Completion(text="", model=""))

    @property
    def progress(self) -> int:
        return min(95, self.chars * 100 // self.expected_chars)

    def _run(self) -> None:
        renew_every = max(self.lease_seconds / 3, 1.0)
        since_renewal = 0.0
        while not self._stop.wait(CANCEL_POLL_SECONDS):
            since_renewal += CANCEL_POLL_SECONDS
            try:
                if cancellation.is_requested(get_redis(), self.job_id):
                    self.cancel_requested.set()
                if since_renewal >= renew_every:
                    since_renewal = 0.0
                    self._renew()
            except LeaseLost:
                self.lease_lost.set()
                return
            except Exception:
                logger.warning("job_id=%s heartbeat failed", self.job_id, exc_info=True)

    def _renew(self) -> None:
        with session_scope() as session:
            state = jobs.renew_lease(
                session, job_id=self.job_id, lease_seconds=self.lease_seconds, progress=self.progress
            )
        if state is None:
            raise LeaseLost(str(self.job_id))
        events.publish(get_redis(), self.job_id, events.PROGRESS, {"progress": self.progress})
        if state.cancel_requested:
            self.cancel_requested.set()
