"""A Redis Stream per job: what happened, in order, for SSE, long-poll and dashboards.

Stream ids (`<ms>-<seq>`) are the sequence numbers: they only grow, and an SSE
client resumes with the last one it saw. The stream is an accelerator, not the
record: the jobs row is the source of truth, and readers fall back to it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from db.redis_client import key
from workers.provider_text import storable

logger = logging.getLogger(__name__)

TTL_SECONDS = 24 * 3600
MAX_EVENTS = 20_000  # per job; a runaway stream is trimmed from the front
DELTA_INTERVAL = 0.05  # seconds: streamed text is published at most this often per job

STATUS = "status"
PROGRESS = "progress"
DELTA = "delta"
DONE = "done"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


def stream_key(job_id: uuid.UUID | str) -> str:
    return key("job", job_id, "events")


def job_id_of(stream: str) -> str:
    """The job whose stream `stream_key` named."""
    return stream.split(":")[-2]


def publish(
    redis: Redis, job_id: uuid.UUID, type: str, data: dict[str, Any], *, set_ttl: bool = True
) -> str | None:
    """Append an event. A Redis failure is logged, never raised: the job goes on and
    readers fall back to the row. `set_ttl=False` for events between a status and
    the end (the stream's expiry was set by the one before and is set by the one after)."""
    if set_ttl:
        return publish_all(redis, job_id, [(type, data)])
    try:
        return redis.xadd(stream_key(job_id), _fields(type, data), maxlen=MAX_EVENTS, approximate=True)
    except RedisError:
        logger.warning("job_id=%s event %s not published", job_id, type, exc_info=True)
        return None


def publish_all(
    redis: Redis,
    job_id: uuid.UUID,
    items: list[tuple[str, dict[str, Any]]],
    *,
    also: Sequence[Callable[[Pipeline], object]] = (),
) -> str | None:
    """Append several events in order, and set the stream's expiry, in one round trip
    (the last streamed text and `done`). The last event's id; failures as `publish`.
    `also`: other writes of the same moment (the queue's counters, workers/queue_position.py),
    sent after the events in the same round trip; one that fails is logged, and does not
    stop the events."""
    name = stream_key(job_id)
    try:
        pipe = redis.pipeline(transaction=False)
        for type, data in items:
            pipe.xadd(name, _fields(type, data), maxlen=MAX_EVENTS, approximate=True)
        pipe.expire(name, TTL_SECONDS)
        for write in also:
            write(pipe)
        replies = pipe.execute(raise_on_error=False)
        told = replies[: len(items) + 1]
        failed = next((reply for reply in told if isinstance(reply, Exception)), None)
        if failed is not None:
            raise failed
    except RedisError:
        types = [type for type, _ in items]
        logger.warning("job_id=%s events %s not published", job_id, types, exc_info=True)
        return None
    for reply in replies[len(items) + 1 :]:
        if isinstance(reply, Exception):
            logger.info("job_id=%s a write sent with the events failed: %s", job_id, reply)
    return told[-2]


def forget(redis: Redis, job_ids: list[uuid.UUID]) -> None:
    """Remove jobs' streams (their results were deleted). A Redis failure is logged:
    the streams expire on their own within TTL_SECONDS."""
    if not job_ids:
        return
    try:
        redis.delete(*(stream_key(job_id) for job_id in job_ids))
    except RedisError:
        logger.warning("events of %s deleted jobs not removed; they expire", len(job_ids), exc_info=True)


def _fields(type: str, data: dict[str, Any]) -> dict[str, str]:
    return {"type": type, "data": json.dumps(data, separators=(",", ":"))}


class DeltaBatcher:
    """Streamed text as `delta` events: the first piece at once, then what arrived
        in each `interval` as one event, so a fast stream costs a few events a second
        rather than one per token. `flush()` sends what is left, or `take()` hands it over
    to be sent with the job's `done` event."""

    def __init__(self, redis: Redis, job_id: uuid.UUID, *, interval: float = DELTA_INTERVAL) -> None:
        self.redis = redis
        self.job_id = job_id
        self.interval = interval
        self.pending: list[str] = []
        self.due = float("-inf")  # when the next piece goes out at once

    def add(self, text: str) -> None:
        self.pending.append(text)
        if time.monotonic() >= self.due:
            self.flush()

    def flush(self) -> None:
        text = self.take()
        if text:
            publish(self.redis, self.job_id, DELTA, {"text": text}, set_ttl=False)
            self.due = time.monotonic() + self.interval

    def take(self) -> str:
        """What is held and not sent, for the caller to send with the job's last event
        (one round trip for both: `publish_all`); "" when nothing is. Cleaned here, as
        one text, rather than piece by piece: `storable` of the whole is the pieces'
        `storable`s joined."""
        text, self.pending = "".join(self.pending), []
        return storable(text)


def read(
    redis: Redis, job_id: uuid.UUID | str, *, after: str = "0", block_ms: int | None = None, count: int = 500
) -> list[Event]:
    """Events after `after` (an event id; "0" for all), waiting up to block_ms for one."""
    reply = redis.xread({stream_key(job_id): after}, count=count, block=block_ms)
    return [decode(event_id, fields) for _, entries in reply or [] for event_id, fields in entries]


def decode(event_id: str, fields: dict[str, str]) -> Event:
    """An event as XREAD returns it."""
    return Event(event_id, fields["type"], json.loads(fields["data"]))


def get(redis: Redis, job_id: uuid.UUID | str, event_id: str) -> Event | None:
    """The one event with this id, if the stream still has it."""
    entries = redis.xrange(stream_key(job_id), min=event_id, max=event_id, count=1)
    return Event(entries[0][0], entries[0][1]["type"], json.loads(entries[0][1]["data"])) if entries else None


def last_id(redis: Redis, job_id: uuid.UUID | str) -> str:
    """The id of the newest event, or "0" when there is none yet."""
    newest = redis.xrevrange(stream_key(job_id), count=1)
    return newest[0][0] if newest else "0"
