"""The broker transport (workers/broker.py): kombu's Redis transport, one client a channel,
whose commands wait for a free connection rather than fail when the pool is busy."""

import threading
import uuid

import billiard
import pytest
from kombu import Connection
from redis import Redis

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

            # A pool process forked from here (as Celery's prefork pool forks, through
            # billiard): kombu gives the channel a new pool, and the kept client follows it.
            reader, writer = billiard.Pipe(duplex=False)
            child = billiard.get_context("fork").Process(
                target=_after_the_fork, args=(channel, first, queue, writer)
            )
            child.start()
            child.join(timeout=30)
            assert reader.poll(0) and reader.recv() == (True, True, 3)
            assert child.exitcode == 0
            with channel.conn_or_acquire() as still:  # the parent's pool and client are its own
                assert still is first
        finally:
            queue.queue.delete()
            queue.close()


def _after_the_fork(channel, first, queue, writer) -> None:
    with channel.conn_or_acquire() as fresh:
        built_anew, on_the_new_pool = fresh is not first, fresh.connection_pool is channel.pool
    queue.put({"n": 3})
    writer.send((built_anew, on_the_new_pool, _take(queue)))


def test_commands_wait_for_a_free_connection_when_every_one_is_busy(settings):
    """More commands at once than the pool has connections (a gevent worker acking many
    jobs): each waits its turn; none is refused with MaxConnectionsError."""
    name = f"conveyor-test-{uuid.uuid4().hex}"
    options = {"max_connections": 2, "client_name": name}
    with Connection(settings.celery_broker_url, transport=Transport, transport_options=options) as connection:
        channel = connection.default_channel
        # kombu makes the pool on first use; six threads racing there could each make one
        # (a worker makes it at its first publish, before any concurrency, as here).
        assert channel.pool is channel.pool
        redis = Redis.from_url(settings.celery_broker_url)
        consumer = {seen["id"] for seen in redis.client_list() if seen["name"] == name}  # its own pool
        empty = f"conveyor-test-empty-{uuid.uuid4().hex}"
        failures: list[BaseException] = []

        def busy() -> None:
            try:
                with channel.conn_or_acquire() as client:
                    client.blpop([empty], timeout=0.2)  # holds its connection for 0.2 s
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=busy) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert failures == []
        # The connections Redis saw the commands' pool open: never more than its 2.
        opened = {seen["id"] for seen in redis.client_list() if seen["name"] == name} - consumer
        assert 1 <= len(opened) <= 2


def _take(queue) -> int:
    message = queue.get(timeout=2)
    message.ack()
    return message.payload["n"]


def test_a_channel_closing_after_its_connection_was_lost_raises_an_error_kombu_ignores(settings):
    """Celery's consumer, losing the broker, releases its connection; the channel's close
    restores the unacknowledged messages through a new pool. Detached from its connection,
    the channel must answer with a connection error (kombu's `ignore_errors` swallows those
    and the consumer reconnects), not an AttributeError that stops the worker."""
    connection = Connection(settings.celery_broker_url, transport=Transport)
    channel = connection.default_channel
    channel.connection.client = None  # as kombu's Connection does when it lets go of its transport
    channel.qos.restore_unacked_once()  # what the close runs; nothing unacked: no pool needed
    try:
        # connection_errors: what kombu.common.ignore_errors swallows around the release
        with pytest.raises(connection.connection_errors), channel.conn_or_acquire():
            pass
    finally:
        channel.connection.client = connection
        connection.release()
