"""One reader per process for the job event streams this process's clients follow.

An event stream or long-poll that waited in its own XREAD BLOCK held a pooled Redis
connection for as long as it waited: a few hundred of them used up the pool that
authentication, rate limits and submits share, and every request answered 503. Here
one blocking XREAD, on a connection of its own, covers every followed job, and hands
what it reads to the requests waiting on it; a waiting request borrows nothing.

A new follower wakes the read at once (an entry on this reader's own wake stream),
so following adds no delay. If Redis cannot be read the followers' waits simply run
out and they read the jobs row, as they always could. Works with real threads (the
Flask test client) and under gevent, where gunicorn's worker patches `threading`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

from redis import Redis
from redis.exceptions import RedisError

from db.redis_client import DRIVER, get_redis, key
from workers import job_stream

logger = logging.getLogger(__name__)

BLOCK_MS = 10_000  # how long the read waits when nothing happens; followers wake it
RETRY_SECONDS = 1.0  # after a failed read (Redis restarting)
BUFFER_LIMIT = 500  # events held for a follower that has not taken them (a slow client)
WAKE_TTL_SECONDS = 60  # the wake stream outlives a process that died by this much


def order(event_id: str) -> tuple[int, int]:
    """A stream id as something that sorts ("0" and "<ms>" included, as XREAD takes them)."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class Follower:
    """One request following one job: the events after `after`, as the hub reads them."""

    def __init__(self, hub: StreamHub, job_id: str, after: str) -> None:
        self.hub = hub
        self.job_id = job_id
        self.after = after  # the newest event handed to this follower (under the hub's lock)
        self.pending: list[job_stream.Event] = []
        self.arrived = threading.Condition(hub.lock)

    def wait(self, seconds: float) -> list[job_stream.Event]:
        """The events not taken yet, waiting up to `seconds` for one; none if nothing
        came or Redis could not be read."""
        with self.hub.lock:
            if not self.pending:
                self.arrived.wait(seconds)
            taken, self.pending = self.pending, []
        if len(taken) >= BUFFER_LIMIT:  # the reader left it out while it was full
            self.hub.wake()
        return taken

    def has_room(self) -> bool:
        return len(self.pending) < BUFFER_LIMIT


class StreamHub:
    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.someone_follows = threading.Condition(self.lock)
        self.followers: dict[str, set[Follower]] = {}
        self.wake_key = key("events", "wake", uuid.uuid4().hex)
        self.wake_after = "0"
        self.reading = False  # the reader is (about to be) in XREAD with the current snapshot
        self.wake_sent = False  # a wake is on its way since that snapshot
        self.reader: threading.Thread | None = None
        self.failing = False  # said once when reads start failing, once when they work again
        # Its own connection: a blocked read never holds one that another request needs.
        self.redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=BLOCK_MS / 1000 + 5,
            socket_connect_timeout=2,
            single_connection_client=True,
            driver_info=DRIVER,
        )

    def follow(self, job_id: uuid.UUID | str, *, after: str) -> Follower:
        """Start following a job's events after `after` (an event id; "0" for all).
        Pair with `unfollow` in a `finally`."""
        follower = Follower(self, str(job_id), after)
        with self.lock:
            self.followers.setdefault(follower.job_id, set()).add(follower)
            if self.reader is None or not self.reader.is_alive():
                self.reader = threading.Thread(target=self.run, name="stream-hub", daemon=True)
                self.reader.start()
            self.someone_follows.notify()
        self.wake()
        return follower

    def unfollow(self, follower: Follower) -> None:
        with self.lock:
            following = self.followers.get(follower.job_id, set())
            following.discard(follower)
            if not following:
                self.followers.pop(follower.job_id, None)

    def wake(self) -> None:
        """Make a read in progress return, so that the next one covers a new follower."""
        with self.lock:
            if not self.reading or self.wake_sent:
                return
            self.wake_sent = True
        try:
            pipe = get_redis(self.url).pipeline(transaction=False)
            pipe.xadd(self.wake_key, {"wake": "1"}, maxlen=1, approximate=False)
            pipe.expire(self.wake_key, WAKE_TTL_SECONDS)
            pipe.execute()
        except RedisError:
            logger.warning("event hub: wake not sent; the read ends on its own", exc_info=True)

    def run(self) -> None:
        while True:
            positions = self._next_read()
            try:
                reply = self.redis.xread(positions, count=BUFFER_LIMIT, block=BLOCK_MS)
                if self.failing:
                    self.failing = False
                    logger.info("event hub: reading job events again")
                self._hand_out(positions, reply or [])
            except RedisError:
                if not self.failing:
                    self.failing = True
                    logger.warning(
                        "event hub: cannot read job events; followers read the rows", exc_info=True
                    )
                time.sleep(RETRY_SECONDS)
            except Exception:
                # A reader that died would leave every stream of this process on row reads
                # for good: log and read on.
                logger.exception("event hub: unexpected error")
                time.sleep(RETRY_SECONDS)

    def _next_read(self) -> dict[str, str]:
        """Where the next XREAD starts in each followed job's stream: the oldest position
        of its followers that have room for more."""
        with self.lock:
            while not self.followers:
                self.reading = False
                self.someone_follows.wait()
            self.reading, self.wake_sent = True, False
            positions = {}
            for job_id, following in self.followers.items():
                open_to_more = [follower.after for follower in following if follower.has_room()]
                if open_to_more:
                    positions[job_stream.stream_key(job_id)] = min(open_to_more, key=order)
            positions[self.wake_key] = self.wake_after
            return positions

    def _hand_out(self, positions: dict[str, str], reply: list) -> None:
        """Each follower gets the events after its own position, from a read that
        started at or before it (one that came in since waits for the next read, or it
        would miss what lies between)."""
        with self.lock:
            for stream, entries in reply:
                if stream == self.wake_key:
                    self.wake_after = entries[-1][0]
                    continue
                read = [job_stream.decode(event_id, fields) for event_id, fields in entries]
                start = order(positions[stream])
                for follower in self.followers.get(job_stream.job_id_of(stream), ()):
                    if order(follower.after) < start:
                        continue
                    for event in read:
                        if follower.has_room() and order(event.id) > order(follower.after):
                            follower.pending.append(event)
                            follower.after = event.id
                    if follower.pending:
                        follower.arrived.notify_all()


_hubs: dict[tuple[int, str], StreamHub] = {}
_hubs_lock = threading.Lock()


def get_hub(url: str | None = None) -> StreamHub:
    """This process's hub (a forked process makes its own: threads do not survive a fork)."""
    if url is None:
        from settings import get_settings

        url = get_settings().redis_url
    with _hubs_lock:
        hub = _hubs.get((os.getpid(), url))
        if hub is None:
            hub = _hubs[(os.getpid(), url)] = StreamHub(url)
        return hub
