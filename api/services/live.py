"""Following a job as it runs: long-poll and server-sent events.

Both read the job's event stream (workers/events.py) to wake up at once, and the
jobs row to decide: an event lost with a Redis restart delays a client by at most
a poll interval, never strands it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from redis.exceptions import RedisError

from api.services import jobs as job_service
from api.services.errors import Invalid
from db.models.job import TERMINAL
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope, standalone
from workers import events

EVENT_ID = re.compile(r"\d+(-\d+)?")
MAX_WAIT_SECONDS = 30
ROW_CHECK_SECONDS = 2.0
RECONNECT_MS = 2000


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
    text as it streams) are not looked at in the row, which is still read every
    ROW_CHECK_SECONDS in case the last event was lost. Each read takes a pooled
    connection and gives it back: none is held while the request waits, so
    long-polls do not use up the database pool."""
    redis = get_redis()
    after = _last_event_id(redis, job_id)  # before reading the row, so no change slips between
    job = _read(user_id, job_id)
    read_at = time.monotonic()
    baseline = seen or fingerprint(job)
    deadline = read_at + min(seconds, MAX_WAIT_SECONDS)
    while job.status not in TERMINAL and (until_finished or fingerprint(job) == baseline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        batch = _wait_for_events(redis, job_id, after, min(remaining, ROW_CHECK_SECONDS))
        after = batch[-1].id if batch else after
        if until_finished and batch and all(event.type != events.DONE for event in batch):
            now = time.monotonic()
            if now - read_at < ROW_CHECK_SECONDS and now < deadline:
                continue  # it has not finished: no need to look at the row yet
        job = _read(user_id, job_id)
        read_at = time.monotonic()
    return job


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
        event = events.get(get_redis(), job_id, event_id)
    except RedisError:
        return False
    return event is not None and event.type == events.DONE


def event_stream(job_id: uuid.UUID, *, last_event_id: str | None, heartbeat: float) -> Iterator[str]:
    """The SSE body: events after `last_event_id` (all of them when None), a comment
    every `heartbeat` seconds of silence, and the end at the job's terminal event.
    Ownership is checked by the caller before streaming starts."""
    redis = get_redis()
    after = last_event_id or "0"
    # Sent at once: the client learns how soon to reconnect, and proxies see the
    # response start instead of waiting for the first event.
    yield f"retry: {RECONNECT_MS}\n\n"
    quiet_since = time.monotonic()
    while True:
        try:
            batch = events.read(redis, job_id, after=after, block_ms=int(ROW_CHECK_SECONDS * 1000))
        except RedisError:
            batch = []
            time.sleep(ROW_CHECK_SECONDS)
        for event in batch:
            after = event.id
            yield _sse(event.type, event.data, event_id=event.id)
            if event.type == events.DONE:
                return
        if batch:
            quiet_since = time.monotonic()
            continue
        finished = _terminal_state(job_id)
        if finished is not None:  # ended without an event we could read (reaper, Redis restart)
            yield _sse(events.DONE, finished)
            return
        if time.monotonic() - quiet_since >= heartbeat:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"


def _wait_for_events(redis, job_id: uuid.UUID, after: str, seconds: float) -> list[events.Event]:
    """The job's events after `after`, waiting up to `seconds` for one; none if Redis
    cannot be read (after the wait: the row is read then)."""
    try:
        return events.read(redis, job_id, after=after, block_ms=max(int(seconds * 1000), 1))
    except RedisError:
        time.sleep(seconds)
        return []


def _last_event_id(redis, job_id: uuid.UUID) -> str:
    try:
        return events.last_id(redis, job_id)
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
