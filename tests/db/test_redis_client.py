"""The Redis clients Conveyor makes (db/redis_client.py `DRIVER`)."""

import redis
import redis.utils
from kombu import Connection

from api.services.stream_hub import StreamHub
from db.redis_client import get_redis
from workers.broker import Transport
from workers.queues import Heartbeat


def test_every_client_opens_connections_without_scanning_the_package_metadata(settings, monkeypatch):
    # redis-py's default reads its own version from the installed package's metadata for
    # each new connection; a burst of new connections paid it for every one.
    def scan() -> str:
        raise AssertionError("a new connection looked redis-py's version up in the package metadata")

    monkeypatch.setattr(redis.utils, "get_lib_version", scan)
    clients = {
        "shared": get_redis.__wrapped__(settings.redis_url),
        "stream hub": StreamHub(settings.redis_url).redis,
        "heartbeat": Heartbeat(settings.redis_url, hostname="test@here", queues=tuple, interval=1).redis,
    }
    with Connection(settings.celery_broker_url, transport=Transport) as broker:
        channel = broker.default_channel
        with channel.conn_or_acquire() as commands:
            clients["broker's commands"] = commands
            clients["broker's consumer"] = channel.client
            for name, client in clients.items():
                assert client.ping(), name
                # What CLIENT SETINFO tells the server (Redis 7.2 and later) is unchanged.
                connection = client.connection_pool.get_connection()
                try:
                    assert connection.driver_info.formatted_name == "redis-py", name
                    assert connection.driver_info.lib_version == redis.__version__, name
                finally:
                    client.connection_pool.release(connection)
