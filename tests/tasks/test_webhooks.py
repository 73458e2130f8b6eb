"""The webhook tasks send their messages to the default queue, once per due delivery."""

import uuid

import celeryconfig
from db.repositories import webhooks
from db.session import session_scope
from tasks import webhooks as webhook_tasks
from tests import rows


def finished_job() -> tuple[uuid.UUID, uuid.UUID]:
    job_id = rows.finished_job(input={"prompt": "hi"}, webhook_url="http://127.0.0.1:9/hook")
    with session_scope() as session:
        return job_id, webhooks.for_job(session, job_id=job_id)[0].id


def messages_for(delivery_id) -> dict[str, int]:
    from celery import current_app

    with current_app.connection_for_write() as connection:
        redis = connection.default_channel.client
        return {
            queue: sum(str(delivery_id).encode() in message for message in redis.lrange(queue, 0, -1))
            for queue in ("ai", "default")
        }


def test_deliver_for_job_sends_one_message_to_the_default_queue():
    job_id, delivery_id = finished_job()
    webhook_tasks.deliver_for_job(job_id)
    webhook_tasks.deliver_for_job(job_id)  # a fresh message is already out
    assert webhook_tasks.sweep() == 0
    assert messages_for(delivery_id) == {"ai": 0, "default": 1}


def test_the_sweep_sends_a_message_for_each_due_delivery():
    _, first = finished_job()
    _, second = finished_job()
    assert webhook_tasks.sweep() == 2
    assert messages_for(first) == messages_for(second) == {"ai": 0, "default": 1}


def test_the_beat_runs_the_sweep_every_ten_seconds():
    assert "tasks.webhooks" in celeryconfig.imports
    schedule = {entry["task"]: entry["schedule"] for entry in celeryconfig.beat_schedule.values()}
    assert schedule["conveyor.webhooks.sweep"] == 10.0
