"""Celery's Redis transport (kombu's), keeping one Redis client per channel.

kombu's Redis channel builds a new `redis.Redis` client for every command it sends
outside its event loop (each task it publishes, each ack), all over the same
connection pool, and redis-py's constructor does enough work to show in every
submit's cost. This channel builds one client and keeps it while the channel's connection
pool is the same one (kombu replaces the pool after a fork or a reconnect; the
client is then built anew). A redis-py client is safe to share: each command takes a
connection from the pool. Everything else is kombu's.

Its commands (publishes, acks) wait for a free connection when all of the pool's
`max_connections` (kombu's default: 10) are in use, where kombu's pool raises
`MaxConnectionsError` (workers/compat.py `BlockingPoolChannel`). A gevent worker
running hundreds of jobs acks many at once: the bench's I/O runs saw acks refused,
and then the worker drop its broker connection and with it the messages it had
reserved, which came back only after the visibility timeout. Waiting a moment for a
connection is the right answer to a busy pool; the consumer's own connection (its
BRPOP) is in a pool of its own, as before.

`install()` (called where the Celery app is made) makes it the transport of the
`redis://` and `rediss://` schemes, so broker URLs, Flower and `celery inspect` see
the Redis broker they expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import TRANSPORT_ALIASES, redis

from workers.compat import BlockingPoolChannel

SCHEMES = ("redis", "rediss")


class Channel(BlockingPoolChannel):
    kept_client = None

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        if client:
            yield client
            return
        kept, pool = self.kept_client, self.pool
        if kept is None or kept.connection_pool is not pool:
            kept = self.kept_client = self.Client(connection_pool=pool)
        yield kept


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
