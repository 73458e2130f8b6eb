"""The workers' reaches into a library's private names, and why each stays.

Each has a guard test in tests/workers/test_compat.py that fails when the library
changes under it.

- kombu's Redis channel builds its connection pool in `Channel._get_pool`, from the
  parameters `Channel._connparams` gathers; there is no option for the pool's class.
  `BlockingPoolChannel` makes that pool a redis-py `BlockingConnectionPool`, whose
  commands wait for a free connection where kombu's pool refuses them: a gevent worker
  acking many jobs at once otherwise drops its broker connection and the messages it
  had reserved (workers/broker.py). It builds the consumer's pool as kombu does, and
  both pools' connections name themselves as every Conveyor client does
  (db/redis_client.py `DRIVER`), not looking redis-py's version up for each one.
- logging collects, for every record, where it was logged from unless
  `logging._srcfile` is None (the logging HOWTO's "Optimization" names this as the way
  to turn it off); neither log format shows it, and the web logs a line per request.
"""

from __future__ import annotations

import logging

from kombu.transport import redis
from redis import BlockingConnectionPool, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from db.redis_client import DRIVER

POOL_WAIT_SECONDS = 30  # a command waits this long for a free connection before failing


class BlockingPoolChannel(redis.Channel):
    """kombu's Redis channel, its pool for commands (not the consumer's) a blocking one."""

    def _get_pool(self, asynchronous: bool = False):
        if self.connection.client is None:
            # The channel is closing after its broker connection was lost: kombu's close
            # restores the unacknowledged messages through a new pool, which a detached
            # connection cannot give. A connection error there is one kombu ignores (the
            # messages stay in Redis for the restore sweep); any other error stopped the
            # worker (`Unrecoverable error`), as the chaos soak showed after Redis restarts.
            raise RedisConnectionError("the broker connection is closed")
        # As kombu's: its parameters, and the fanout prefix named for the db. Both pools'
        # connections name themselves as every Conveyor client's do (db/redis_client.py).
        params = self._connparams(asynchronous=asynchronous) | {"driver_info": DRIVER}
        self.keyprefix_fanout = self.keyprefix_fanout.format(db=params["db"])
        if asynchronous:  # the consumer's BRPOP: a pool of its own, of kombu's class
            return ConnectionPool(**params)
        return BlockingConnectionPool(timeout=POOL_WAIT_SECONDS, **params)


def skip_caller_lookup() -> None:
    """Stop logging from finding, for every record, the file and line it came from."""
    logging._srcfile = None  # type: ignore[attr-defined]
