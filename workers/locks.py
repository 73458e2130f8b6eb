"""One run at a time for scheduled work: a Redis lock per task.

Two beats (a deploy overlap, a second replica) or a run slower than its interval
would otherwise run the same clean-up side by side. The lock is not waited for:
if another run holds it, this one is skipped, and the next tick tries again.

The lock lives only as long as its run: it is taken for HOLD seconds and renewed
while the run goes on, so a run killed mid-way (a worker SIGKILLed, a machine gone)
blocks the task for a few ticks, not for the whole `timeout` (the soak found a
killed reaper keeping every lapsed lease unreaped for five minutes). Renewal stops
after `timeout` seconds, so a run that hangs cannot keep it for good either; pick
a timeout longer than the task can run.

    result = run_exclusively("maintenance.reap_leases", reap, timeout=300)
    # None when skipped
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from redis import Redis
from redis.exceptions import LockError, RedisError

from db.redis_client import get_redis, key

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 15 * 60
HOLD = 10.0  # seconds a lock outlives a run that died holding it


def lock_key(name: str) -> str:
    return key("lock", name)


@contextmanager
def exclusive(
    name: str, *, timeout: float = DEFAULT_TIMEOUT, redis: Redis | None = None, hold: float = HOLD
) -> Iterator[bool]:
    """Yields True while holding the lock named `name`, False if another run holds it."""
    # Not thread-local: the renewing thread acts with the token this one took.
    lock = (redis or get_redis()).lock(
        lock_key(name), timeout=min(hold, timeout), blocking=False, thread_local=False
    )
    if not lock.acquire(blocking=False):
        logger.info("%s skipped: another run holds its lock", name)
        yield False
        return
    done = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, done, timeout), name=f"lock {name}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        done.set()
        renewer.join()
        try:
            lock.release()
        except LockError:
            # It expired and perhaps another run took it: that run's lock is left alone.
            logger.warning("%s ran longer than its %s s lock", name, timeout)


def _renew(lock, done: threading.Event, timeout: float) -> None:
    """Keep the lock for as long as the run lives, up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done.wait(lock.timeout / 3):
        if time.monotonic() >= deadline:
            return
        try:
            lock.reacquire()  # its expiry back to `hold` seconds from now
        except (LockError, RedisError):  # lapsed (Redis was down for longer than `hold`)
            logger.warning("lock %s lost while its run went on", lock.name)
            return


def run_exclusively(name: str, work: Callable[[], T], *, timeout: float = DEFAULT_TIMEOUT) -> T | None:
    """`work()` under the lock named `name`; None (and nothing done) if it is held."""
    with exclusive(name, timeout=timeout) as held:
        return work() if held else None
