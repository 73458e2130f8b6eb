"""How many event streams and long-polls a user, and each API key of theirs, has open,
counted across every web process and host.

A sorted set per user and per key in Redis holds one member per open stream, scored
by when its lease ends (Redis's clock, so hosts agree). A stream renews its lease as
it runs and gives it back when it ends; one whose process died lapses with its lease,
so a crash never locks anyone out for long.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from api.services.errors import TooManyRequests
from db.redis_client import get_redis, key
from settings import Settings

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60  # longer than the longest long-poll; event streams renew it
RETRY_AFTER_SECONDS = 10

# KEYS: the counts to take a slot in; ARGV: member, lease seconds, then each count's cap.
# Answers 0 when taken, else the (1-based) index of the count that is full.
_TAKE = """
local now = tonumber(redis.call('TIME')[1])
for i, name in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', name, '-inf', now)
  if redis.call('ZCARD', name) >= tonumber(ARGV[2 + i]) then return i end
end
for _, name in ipairs(KEYS) do
  redis.call('ZADD', name, now + tonumber(ARGV[2]), ARGV[1])
  redis.call('EXPIRE', name, ARGV[2])
end
return 0
"""
_RENEW = """
local now = tonumber(redis.call('TIME')[1])
for _, name in ipairs(KEYS) do
  redis.call('ZADD', name, 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('EXPIRE', name, ARGV[2])
end
return 0
"""


@dataclass
class StreamSlot:
    """One open stream's place in its counts; `release` (safe to call twice) when it ends."""

    names: tuple[str, ...]
    member: str = field(default_factory=lambda: uuid.uuid4().hex)
    renewed_at: float = field(default_factory=time.monotonic)

    def renew(self) -> None:
        """Extend the lease, once half of it is gone (cheap to call at every wake)."""
        if not self.names or time.monotonic() - self.renewed_at < LEASE_SECONDS / 2:
            return
        try:
            get_redis().eval(_RENEW, len(self.names), *self.names, self.member, LEASE_SECONDS)
            self.renewed_at = time.monotonic()
        except RedisError:
            logger.warning("stream slot not renewed; it lapses unless renewed later", exc_info=True)

    def release(self) -> None:
        names, self.names = self.names, ()
        if not names:
            return
        try:
            pipe = get_redis().pipeline(transaction=False)
            for name in names:
                pipe.zrem(name, self.member)
            pipe.execute()
        except RedisError:
            logger.warning("stream slot not released; it lapses with its lease", exc_info=True)

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def take(*, user_id: uuid.UUID, api_key_id: uuid.UUID | None, settings: Settings) -> StreamSlot:
    """A slot for one more open stream or long-poll, or 429 when the user (or the API
    key it came with) has as many open as they may. If Redis cannot count, the stream
    is let through: it holds no connection another request needs, and refusing would
    turn a Redis blip into errors for clients that can fall back to the jobs row."""
    counts = [(key("streams", "user", user_id), settings.max_open_streams_per_user)]
    if api_key_id is not None:
        counts.append((key("streams", "api-key", api_key_id), settings.max_open_streams_per_api_key))
    slot = StreamSlot(names=tuple(name for name, _ in counts))
    try:
        full = get_redis().eval(
            _TAKE, len(counts), *slot.names, slot.member, LEASE_SECONDS, *(cap for _, cap in counts)
        )
    except RedisError:
        logger.warning("user_id=%s stream not counted: Redis is unavailable", user_id, exc_info=True)
        return StreamSlot(names=())
    if full:
        raise _too_many(by_key=full == 2, cap=counts[full - 1][1])
    return slot


def _too_many(*, by_key: bool, cap: int) -> TooManyRequests:
    holder = "This API key has" if by_key else "You have"
    most = "one API key" if by_key else "one account"
    return TooManyRequests(
        f"{holder} {cap} event streams and long-polls open, the most {most} may have at once. "
        "Close some of them, follow fewer jobs at a time (GET /api/v1/jobs lists many in one request), "
        "or have results delivered by webhook (webhook_url on POST /api/v1/jobs).",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
