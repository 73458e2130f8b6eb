"""Guards of workers/compat.py: each fails when the library changes under what it relies on."""

import inspect
import logging

from kombu import Connection
from kombu.transport import redis
from redis import BlockingConnectionPool, ConnectionPool

from db.redis_client import DRIVER
from workers import compat
from workers.broker import Transport


def test_kombu_still_builds_a_channel_pool_through_the_overridden_methods():
    for name in ("_get_pool", "_connparams"):
        parameters = inspect.signature(getattr(redis.Channel, name)).parameters
        assert list(parameters) == ["self", "asynchronous"] and parameters["asynchronous"].default is False
    assert "_get_pool" in compat.BlockingPoolChannel.__dict__


def test_the_blocking_pool_gets_what_kombus_own_pool_gets(settings):
    # kombu's pool and ours, from the same URL: the same connection parameters and the
    # same fanout prefix; ours only waits for a free connection.
    with (
        Connection(settings.celery_broker_url, transport=redis.Transport) as plain,
        Connection(settings.celery_broker_url, transport=Transport) as ours,
    ):
        theirs, kept = plain.default_channel, ours.default_channel
        assert type(theirs.pool) is ConnectionPool and isinstance(kept.pool, BlockingConnectionPool)
        # Ours only adds how the connections name themselves (db/redis_client.py).
        assert kept.pool.connection_kwargs.pop("driver_info") is DRIVER
        assert kept.async_pool.connection_kwargs.pop("driver_info") is DRIVER
        assert _plain(kept.pool.connection_kwargs) == _plain(theirs.pool.connection_kwargs)
        assert _plain(kept.async_pool.connection_kwargs) == _plain(theirs.async_pool.connection_kwargs)
        assert kept.pool.max_connections == theirs.pool.max_connections
        assert kept.keyprefix_fanout == theirs.keyprefix_fanout
        # The consumer's pool is kombu's own.
        assert type(kept.async_pool) is type(theirs.async_pool)


def _plain(kwargs: dict) -> dict:
    """Connection parameters, with the objects each pool makes for itself by their type."""
    plain = (str, int, float, bool, type(None), type, tuple)
    return {name: value if isinstance(value, plain) else type(value) for name, value in kwargs.items()}


def test_logging_skips_the_caller_lookup(monkeypatch):
    monkeypatch.setattr(logging, "_srcfile", logging._srcfile)  # restored after the test
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("conveyor.test.compat")
    logger.addHandler(handler)
    try:
        compat.skip_caller_lookup()
        logger.warning("where from?")
    finally:
        logger.removeHandler(handler)
    assert (records[0].pathname, records[0].lineno) == ("(unknown file)", 0)
