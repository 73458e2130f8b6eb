"""Celery's Redis transport (kombu's), keeping one Redis client per channel.

kombu's Redis channel builds a new `redis.Redis` client for every command it sends
outside its event loop (each task it publishes, each ack), all over the same
connection pool, and redis-py's constructor is not cheap: about 6% of a submit's
instructions went to it. This channel builds one client and keeps it while the
channel's connection pool is the same one (kombu replaces the pool after a fork or
a reconnect; the client is then built anew). A redis-py client is safe to share:
each command takes a connection from the pool. Everything else is kombu's.

`install()` (called where the Celery app is made) makes it the transport of the
`redis://` and `rediss://` schemes, so broker URLs, Flower and `celery inspect` see
the Redis broker they expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import TRANSPORT_ALIASES, redis

SCHEMES = ("redis", "rediss")


class Channel(redis.Channel):
    _kept_client = None

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        if client:
            yield client
            return
        kept = self._kept_client
        if kept is None or kept.connection_pool is not self.pool:
            kept = self._kept_client = self._create_client()
        yield kept


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
