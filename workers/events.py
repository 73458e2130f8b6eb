"""A Redis Stream per job: what happened, in order, for SSE, long-poll and dashboards.

Stream ids (`<ms>-<seq>`) are the sequence numbers: they only grow, and an SSE
client resumes with the last one it saw. The stream is an accelerator, not the
record: the jobs row is the source of truth, and readers fall back to it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from db.redis_client import key

logger = logging.getLogger(__name__)

TTL_SECONDS = 24 * 3600
MAX_EVENTS = 20_000  # per job; a runaway stream is trimmed from the front

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


def publish(redis: Redis, job_id: uuid.UUID, type: str, data: dict[str, Any]) -> str | None:
    """Append an event. A Redis failure is logged, never raised: the job goes on and
    readers fall back to the row."""
    name = stream_key(job_id)
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.xadd(
            name,
            {"type": type, "data": json.dumps(data, separators=(",", ":"))},
            maxlen=MAX_EVENTS,
            approximate=True,
        )
        pipe.expire(name, TTL_SECONDS)
        event_id, _ = pipe.execute()
        return event_id
    except RedisError:
        logger.warning("job_id=%s event %s not published", job_id, type, exc_info=True)
        return None


def read(
    redis: Redis, job_id: uuid.UUID | str, *, after: str = "0", block_ms: int | None = None, count: int = 500
) -> list[Event]:
    """Events after `after` (an event id; "0" for all), waiting up to block_ms for one."""
    reply = redis.xread({stream_key(job_id): after}, count=count, block=block_ms)
    events = []
    for _, entries in reply or []:
        for event_id, fields in entries:
            events.append(Event(event_id, fields["type"], json.loads(fields["data"])))
    return events


def last_id(redis: Redis, job_id: uuid.UUID | str) -> str:
    """The id of the newest event, or "0" when there is none yet."""
    newest = redis.xrevrange(stream_key(job_id), count=1)
    return newest[0][0] if newest else "0"
