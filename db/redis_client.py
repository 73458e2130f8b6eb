"""The Redis connection shared by the API (token blocklist, cancel flags) and the workers."""

from __future__ import annotations

from functools import lru_cache

from redis import Redis

KEY_PREFIX = "conveyor:"


@lru_cache(maxsize=4)
def get_redis(url: str | None = None) -> Redis:
    if url is None:
        from settings import get_settings

        url = get_settings().redis_url
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


def key(*parts: object) -> str:
    return KEY_PREFIX + ":".join(str(part) for part in parts)
