"""One beat across every host: a leader lock in Redis that a second beat waits on.

Two beats (a deploy overlap, a second host started with the same Procfile) would
send every periodic task twice; the per-task locks (workers.locks) only stop two runs
overlapping, not a sweep running twice an interval. The beat that holds the lock sends
the schedule and renews the lock well within BEAT_LOCK_TTL; the others tick without
sending and try to take it. A beat that stops cleanly hands the lock back at once; one
that dies (SIGKILL, a lost host) holds it until the TTL runs out, after which a
standby leads. A leader that cannot renew (Redis unreachable, or it stalled past the
TTL and another took over) stops sending until it holds the lock again.

`celeryconfig.beat_scheduler` names this class, so the Procfile's `beat` line needs
no flag.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

from celery.beat import PersistentScheduler
from redis.exceptions import LockError, RedisError

from db.redis_client import get_redis, key

logger = logging.getLogger(__name__)

LOCK_NAME = key("beat", "leader")


class LeaderScheduler(PersistentScheduler):
    """celery's file-backed scheduler, sending only while it holds the leader lock."""

    def __init__(self, *args, lock_ttl: int | None = None, **kwargs) -> None:
        from settings import get_settings

        self.lock_ttl = lock_ttl or get_settings().beat_lock_ttl
        self._lock = None
        self._leading = False
        self._announced = False
        self._renewed_at = 0.0
        self._who = f"{socket.gethostname()}:{os.getpid()}"
        super().__init__(*args, **kwargs)

    @property
    def leading(self) -> bool:
        """Whether this beat held the lock at its last look (it sends the schedule)."""
        return self._leading

    @property
    def check_every(self) -> float:
        """How often the lock is renewed, or asked for: well within its TTL."""
        return self.lock_ttl / 3

    def tick(self, *args, **kwargs) -> float:
        if not self._hold_lead():
            return self.check_every
        return min(super().tick(*args, **kwargs), self.check_every)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._step_down()

    def _hold_lead(self) -> bool:
        now = time.monotonic()
        if self._leading and now - self._renewed_at < self.check_every:
            return True
        if self._lock is None:
            self._lock = get_redis().lock(LOCK_NAME, timeout=self.lock_ttl, blocking=False)
        try:
            if self._leading:
                self._lock.reacquire()
            elif self._lock.acquire(blocking=False):
                logger.warning("beat %s leads: it sends the schedule", self._who)
                self._leading = True
            else:
                if not self._announced:
                    logger.warning("beat %s stands by: another beat leads", self._who)
                    self._announced = True
                return False
        except (LockError, RedisError) as problem:
            if self._leading:
                logger.warning("beat %s lost the lead (%s); standing by", self._who, problem)
            self._leading = False
            return False
        self._renewed_at = now
        return True

    def _step_down(self) -> None:
        if self._leading and self._lock is not None:
            # It may have expired, or Redis be gone: another beat then leads after the TTL.
            with contextlib.suppress(LockError, RedisError):
                self._lock.release()
            self._leading = False
