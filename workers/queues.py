"""What the Celery queues hold and who listens to them, read cheaply from Redis.

- Depth: messages waiting in a queue are a Redis list on the broker (one per
  priority step, as kombu's Redis transport keeps them): LLEN, no worker asked.
- Presence: each worker writes a heartbeat to Redis every few seconds naming the
  queues it consumes (`Heartbeat`, started by the worker's consumer), as a key
  that expires after three missed heartbeats. `/ready` and `GET /admin/queues` read
  them in one round trip, rather than asking every worker over the broker
  (`inspect().active_queues()` waits a whole timeout for workers that never answer).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from redis import Redis

from db.redis_client import DRIVER, key

logger = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue's messages of priority p > 0 in `<queue>\x06\x16<p>`.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"
MISSED_HEARTBEATS = 3  # a worker silent for this many intervals is gone
WORKERS_SET = key("workers")


def depths(broker: Redis, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker has taken and not yet acked)."""
    names = list(queues)
    pipe = broker.pipeline(transaction=False)
    for name in names:
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{PRIORITY_SEPARATOR}{step}" if step else name)
    counts = pipe.execute()
    per_queue = len(PRIORITY_STEPS)
    return {name: sum(counts[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)}


def _worker_key(hostname: str) -> str:
    return key("worker", hostname)


def write_heartbeat(
    redis: Redis, *, hostname: str, queues: Iterable[str], interval: float, concurrency: int = 1
) -> None:
    """Say this worker is alive and consuming `queues` with `concurrency` processes, for
    the next MISSED_HEARTBEATS intervals."""
    note = json.dumps(
        {"queues": sorted(queues), "concurrency": concurrency, "pid": os.getpid(), "at": time.time()}
    )
    pipe = redis.pipeline(transaction=False)
    pipe.set(_worker_key(hostname), note, px=int(interval * MISSED_HEARTBEATS * 1000))
    pipe.sadd(WORKERS_SET, hostname)
    pipe.execute()


def leave(redis: Redis, *, hostname: str) -> None:
    """A worker shutting down cleanly is gone at once, not three heartbeats later."""
    pipe = redis.pipeline(transaction=False)
    pipe.delete(_worker_key(hostname))
    pipe.srem(WORKERS_SET, hostname)
    pipe.execute()


def is_alive(redis: Redis, hostname: str) -> bool:
    """Whether the worker named `hostname` has sent a heartbeat within its missed-beats window."""
    return bool(redis.exists(_worker_key(hostname)))


def workers_by_queue(redis: Redis, queues: Iterable[str]) -> dict[str, list[str]]:
    """The live workers (hostnames) consuming each queue; a queue nobody consumes maps to []."""
    found: dict[str, list[str]] = {name: [] for name in queues}
    for hostname, note in _live_notes(redis):
        for name in note["queues"]:
            if name in found:
                found[name].append(hostname)
    return found


def capacity(redis: Redis, queue: str) -> int:
    """How many jobs of `queue` the live workers can run at once (0: nobody consumes it)."""
    return sum(note.get("concurrency", 1) for _, note in _live_notes(redis) if queue in note["queues"])


def _live_notes(redis: Redis) -> list[tuple[str, dict]]:
    """Each live worker's hostname and heartbeat note; forgets the workers gone silent."""
    hostnames = sorted(redis.smembers(WORKERS_SET))
    if not hostnames:
        return []
    notes = redis.mget([_worker_key(hostname) for hostname in hostnames])
    live, gone = [], []
    for hostname, note in zip(hostnames, notes, strict=True):
        if note is None:  # its key expired: its heartbeats stopped
            gone.append(hostname)
        else:
            live.append((hostname, json.loads(note)))
    if gone:
        redis.srem(WORKERS_SET, *gone)
    return live


class Heartbeat:
    """A daemon thread that calls `write_heartbeat` every `interval` seconds until stopped.

    It has a Redis client of its own: a prefork worker forks its pool while this
    thread runs, and a child must not inherit a connection pool mid-use."""

    def __init__(
        self,
        redis_url: str,
        *,
        hostname: str,
        queues: Callable[[], Iterable[str]],
        interval: float,
        concurrency: int = 1,
    ) -> None:
        self.redis = Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2, driver_info=DRIVER
        )
        self.hostname = hostname
        self.queues = queues
        self.interval = interval
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 3)
        try:
            leave(self.redis, hostname=self.hostname)
        except Exception as error:  # Redis down at shutdown: the key expires by itself
            logger.info("worker heartbeat: could not sign off: %s", error)
        self.redis.close()

    def _run(self) -> None:
        failing = False
        while True:
            try:
                write_heartbeat(
                    self.redis,
                    hostname=self.hostname,
                    queues=self.queues(),
                    interval=self.interval,
                    concurrency=self.concurrency,
                )
                if failing:
                    logger.info("worker heartbeat: Redis answers again")
                failing = False
            except Exception as error:
                if not failing:  # once per outage, not every few seconds
                    logger.warning("worker heartbeat: cannot write to Redis: %s", error)
                failing = True
            if self._stop.wait(self.interval):
                return
