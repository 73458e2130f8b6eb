"""Following a job as it runs: long-poll and server-sent events.

Both follow the job's event stream (workers/job_stream.py) through this process's one
reader (stream_hub.py) to wake up at once, and read the jobs row to decide: an event
lost with a Redis restart delays a client by at most a poll interval, never strands
it. Each holds a slot in its user's count of open streams (stream_slots.py) while it
runs; an event stream also ends when the credential it was opened with stops working.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError

from api.services import jobs as job_service
from api.services.errors import Invalid
from api.services.stream_hub import Follower, get_hub
from api.services.stream_slots import StreamSlot
from db.models.job import QUEUED, TERMINAL
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope, standalone
from workers import job_stream

logger = logging.getLogger(__name__)

EVENT_ID = re.compile(r"\d+(-\d+)?")
MAX_WAIT_SECONDS = 30
ROW_CHECK_SECONDS = 2.0
QUEUE_EVENT_SECONDS = 1.0  # a queued job's stream looks at its place this often
QUEUE_EVENT = "queue"
RECONNECT_MS = 2000

# Asked as a stream runs: why the credential it was opened with no longer works, or None
# while it does (api/auth.py `credential_check`). Never raises.
CredentialCheck = Callable[[], str | None]


def wait_for_change(
    *,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    seconds: int,
    fingerprint: Callable[[Any], str],
    seen: str | None = None,
    until_finished: bool = False,
) -> Any:
    """Return the job (its row, as a poll reads it) as soon as it differs from what the
    client has (`seen`, its ETag; else the job as it is now), or after `seconds`.
    `until_finished`: only once it has finished; its events in between (running, the
    text as it streams) are not looked at in the row. Nor is streamed text in any case:
    it is not in the row until the job ends, and a job streaming sends it several times
    a second. The row is still read every ROW_CHECK_SECONDS in case the last event was
    lost. Each read takes a pooled connection and gives it back, and the events come
    through the process's one reader: nothing a request needs from the database or
    Redis pools is held while it waits."""
    hub = get_hub()
    # Following from the newest event before reading the row: no change slips between.
    follower = hub.follow(job_id, after=_last_event_id(get_redis(), job_id))
    try:
        job = _read(user_id, job_id)
        read_at = time.monotonic()
        baseline = seen or fingerprint(job)
        deadline = read_at + min(seconds, MAX_WAIT_SECONDS)
        while job.status not in TERMINAL and (until_finished or fingerprint(job) == baseline):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch = follower.wait(min(remaining, ROW_CHECK_SECONDS))
            if batch and all(_leaves_row(event, until_finished) for event in batch):
                now = time.monotonic()
                if now - read_at < ROW_CHECK_SECONDS and now < deadline:
                    continue  # nothing the client waits for: no need to look at the row yet
            job = _read(user_id, job_id)
            read_at = time.monotonic()
        return job
    finally:
        hub.unfollow(follower)


def _leaves_row(event: job_stream.Event, until_finished: bool) -> bool:
    """Whether a long-poll can go on waiting after `event` without reading the row."""
    return event.type != job_stream.DONE if until_finished else event.type == job_stream.DELTA


def _read(user_id: uuid.UUID, job_id: uuid.UUID) -> Any:
    with standalone() as connection:
        return job_service.read(connection, user_id=user_id, job_id=job_id)


def check_event_id(value: str | None) -> str | None:
    """A resume point must be an event id we handed out (or "0" for the start)."""
    if value is not None and not EVENT_ID.fullmatch(value):
        raise Invalid(
            "Last-Event-ID is not an event id.",
            errors={"headers": {"Last-Event-ID": ["An event id looks like 1700000000000-0."]}},
        )
    return value


def ended_at(job_id: uuid.UUID, event_id: str | None) -> bool:
    """Whether `event_id` is the job's `done`: a client resuming from it has seen it all.
    A browser's EventSource reconnects whenever a stream ends; told 204 it stops."""
    if event_id is None:
        return False
    try:
        event = job_stream.get(get_redis(), job_id, event_id)
    except RedisError:
        return False
    return event is not None and event.type == job_stream.DONE


def event_stream(
    job_id: uuid.UUID,
    *,
    last_event_id: str | None,
    keepalive: float,
    credential: CredentialCheck,
    slot: StreamSlot,
) -> Iterator[str]:
    """The SSE body: events after `last_event_id` (all of them when None), a comment
    every `keepalive` seconds of silence, and the end at the job's terminal event.
    Every ROW_CHECK_SECONDS it asks `credential` whether the stream may go on (and
    renews `slot`'s lease); when not, it ends with an `error` event saying why (401).
    Ownership is checked, and `slot` taken and released, by the caller."""
    # Sent at once: the client learns how soon to reconnect, and proxies see the
    # response start instead of waiting for the first event.
    yield f"retry: {RECONNECT_MS}\n\n"
    hub = get_hub()
    follower = hub.follow(job_id, after=last_event_id or "0")
    try:
        yield from _follow(job_id, follower, keepalive=keepalive, credential=credential, slot=slot)
    except (OperationalError, RedisConnectionError, RedisTimeoutError) as error:
        # Postgres or Redis went away mid-stream. The response has begun, so it cannot be
        # a 503: it ends cleanly, and the client reconnects after `retry:` from its last
        # event id, missing nothing (cut off by the exception, it got a broken body).
        logger.warning("job_id=%s event stream ended: %s unavailable", job_id, type(error).__name__)
    finally:  # the client went away, or the stream ended
        hub.unfollow(follower)


def _follow(
    job_id: uuid.UUID, follower: Follower, *, keepalive: float, credential: CredentialCheck, slot: StreamSlot
) -> Iterator[str]:
    quiet_since = checked_at = time.monotonic()
    watch = _QueueWatch(job_id)
    while True:
        batch = follower.wait(QUEUE_EVENT_SECONDS if watch.active else ROW_CHECK_SECONDS)
        if time.monotonic() - checked_at >= ROW_CHECK_SECONDS:
            checked_at = time.monotonic()
            lapsed = credential()
            if lapsed is not None:
                yield _sse("error", {"code": 401, "status": "Unauthorized", "message": lapsed})
                return
            slot.renew()
        for event in batch:
            if event.type == job_stream.STATUS:  # it runs: it has no place in the queue
                watch.active = False
            yield _sse(event.type, event.data, event_id=event.id)
            if event.type == job_stream.DONE:
                return
        place = watch.changed()
        if place is not None:  # a snapshot with no id: nothing to resume from
            yield _sse(QUEUE_EVENT, place)
            quiet_since = time.monotonic()
        if batch:
            quiet_since = time.monotonic()
            continue
        finished = None if watch.active else _terminal_state(job_id)  # queued a moment ago: not finished
        if finished is not None:  # ended without an event we could read (reaper, Redis restart)
            yield _sse(job_stream.DONE, finished)
            return
        if time.monotonic() - quiet_since >= keepalive:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"


class _QueueWatch:
    """A queued job's place for its stream's `queue` events: looked at every
    QUEUE_EVENT_SECONDS, sent when it changed, until the job is no longer queued."""

    def __init__(self, job_id: uuid.UUID) -> None:
        self.job_id = job_id
        self.active = True
        self.last: dict | None = None
        self.looked_at = -QUEUE_EVENT_SECONDS

    def changed(self) -> dict | None:
        """The job's place, if it is queued and its place is not the one last sent."""
        if not self.active or time.monotonic() - self.looked_at < QUEUE_EVENT_SECONDS:
            return None
        self.looked_at = time.monotonic()
        with session_scope() as session:
            job = jobs.get(session, job_id=self.job_id)
            queued = job is not None and job.status == QUEUED
            place = job_service.queue_place(job) if queued else None
        if not queued:
            self.active = False
            return None
        if place is None or place == self.last:
            return None
        self.last = place
        return place


def _last_event_id(redis, job_id: uuid.UUID) -> str:
    try:
        return job_stream.last_id(redis, job_id)
    except RedisError:
        return "0"


def _terminal_state(job_id: uuid.UUID) -> dict | None:
    with session_scope() as session:
        job = jobs.get(session, job_id=job_id)
        if job is None:
            return {"status": "deleted", "error": None}
        if not job.is_terminal:
            return None
        error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
        return {"status": job.status, "error": error}


def _sse(event_type: str, data: dict, *, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines += [f"event: {event_type}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return "\n".join(lines) + "\n\n"
