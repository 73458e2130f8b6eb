"""The Redis connection shared by the API (token blocklist, cancel flags) and the workers.

Nothing holds one of its connections while it waits for something to happen (event
streams and long-polls have their own reader: api/services/stream_hub.py), so a
connection is only ever borrowed for a command. When every connection is out at once
(a burst of requests in a gevent worker), a request waits for one to come back rather
than failing, up to the same time it would wait on Redis itself.

Every Redis client Conveyor makes (here, the stream hub's reader, the workers'
heartbeat, the rate limiter's storage, the broker's pools) names itself with `DRIVER`:
redis-py's default looks its own version up in the installed package's metadata for
each new connection, a scan of the import path that made every connection a burst
opens (a worker starting hundreds of jobs at once) cost more than the commands it then
sent. The name and version Redis shows in `CLIENT LIST` are the same.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from redis import BlockingConnectionPool, Redis
from redis.driver_info import DriverInfo

KEY_PREFIX = "conveyor:"
POOL_SIZE = 100  # connections per process
WAIT_SECONDS = 5  # for a command's reply, or for a free connection
DRIVER = DriverInfo(lib_version=redis.__version__)  # what CLIENT SETINFO sends, read once


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
        driver_info=DRIVER,
    )
    return Redis.from_pool(pool)


def key(*parts: object) -> str:
    return KEY_PREFIX + ":".join(str(part) for part in parts)
