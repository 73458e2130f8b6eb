"""One run at a time for scheduled work: a Redis lock per task.

Two beats (a deploy overlap, a second replica) or a run slower than its interval
would otherwise run the same clean-up side by side. The lock is not waited for:
if another run holds it, this one is skipped, and the next tick tries again. It
expires after `timeout` seconds, so a run killed mid-way never blocks the task
for good; pick a timeout longer than the task can run.

    result = run_exclusively("maintenance.reap_leases", reap, timeout=300)
    # None when skipped
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from redis import Redis
from redis.exceptions import LockError

from db.redis_client import get_redis, key

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 15 * 60


def lock_key(name: str) -> str:
    return key("lock", name)


@contextmanager
def exclusive(name: str, *, timeout: float = DEFAULT_TIMEOUT, redis: Redis | None = None) -> Iterator[bool]:
    """Yields True while holding the lock named `name`, False if another run holds it."""
    lock = (redis or get_redis()).lock(lock_key(name), timeout=timeout, blocking=False)
    if not lock.acquire(blocking=False):
        logger.info("%s skipped: another run holds its lock", name)
        yield False
        return
    try:
        yield True
    finally:
        try:
            lock.release()
        except LockError:
            # It expired and perhaps another run took it: that run's lock is left alone.
            logger.warning("%s ran longer than its %s s lock", name, timeout)


def run_exclusively(name: str, work: Callable[[], T], *, timeout: float = DEFAULT_TIMEOUT) -> T | None:
    """`work()` under the lock named `name`; None (and nothing done) if it is held."""
    with exclusive(name, timeout=timeout) as held:
        return work() if held else None
