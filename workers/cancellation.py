"""The cancel flag a running job's worker watches.

The database row carries `cancel_requested_at` (durable); this Redis key is the
cheap signal the stream loop polls so that a canceled call stops within a second.
"""

from __future__ import annotations

import uuid

from redis import Redis

from db.redis_client import key

FLAG_TTL = 24 * 3600


def request(redis: Redis, job_id: uuid.UUID) -> None:
    redis.set(key("job", job_id, "cancel"), "1", ex=FLAG_TTL)


def is_requested(redis: Redis, job_id: uuid.UUID) -> bool:
    return redis.exists(key("job", job_id, "cancel")) == 1


def are_requested(redis: Redis, job_ids: list[uuid.UUID]) -> list[bool]:
    """The flags of many jobs in one round trip, in the order given."""
    if not job_ids:
        return []
    return [flag is not None for flag in redis.mget([key("job", job_id, "cancel") for job_id in job_ids])]
