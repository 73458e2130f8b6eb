"""The Redis connection shared by the API (token blocklist, cancel flags) and the workers.

Nothing holds one of its connections while it waits for something to happen (event
streams and long-polls have their own reader: api/services/stream_hub.py), so a
connection is only ever borrowed for a command. When every connection is out at once
(a burst of requests in a gevent worker), a request waits for one to come back rather
than failing, up to the same time it would wait on Redis itself.
"""

from __future__ import annotations

from functools import lru_cache

from redis import BlockingConnectionPool, Redis

KEY_PREFIX = "conveyor:"
POOL_SIZE = 100  # connections per process
WAIT_SECONDS = 5  # for a command's reply, or for a free connection


@lru_cache(maxsize=4)
def get_redis(url: str | None = None) -> Redis:
    if url is None:
        from settings import get_settings

        url = get_settings().redis_url
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=WAIT_SECONDS,
        decode_responses=True,
        socket_timeout=WAIT_SECONDS,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def key(*parts: object) -> str:
    return KEY_PREFIX + ":".join(str(part) for part in parts)
