"""The broker transport (workers/broker.py): kombu's Redis transport, one client a channel."""

from kombu import Connection

from workers.broker import Transport
from workers.celery_app import app as celery_app


def test_celery_sends_through_the_transport_that_keeps_its_client():
    with celery_app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        assert connection.as_uri().startswith("redis://")  # what Flower and inspect read


def test_messages_go_and_come_back_through_one_kept_client(settings):
    with Connection(settings.celery_broker_url, transport=Transport) as connection:
        queue = connection.SimpleQueue("conveyor-test-broker")
        try:
            channel = queue.channel
            for number in range(3):
                queue.put({"n": number})
            assert [_take(queue) for _ in range(3)] == [0, 1, 2]
            with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
                assert first is second

            channel._disconnect_pools()  # what kombu does after a fork or a lost connection
            with channel.conn_or_acquire() as fresh:
                assert fresh is not first and fresh.connection_pool is channel.pool
            queue.put({"n": 3})
            assert _take(queue) == 3
        finally:
            queue.queue.delete()
            queue.close()


def _take(queue) -> int:
    message = queue.get(timeout=2)
    message.ack()
    return message.payload["n"]
