"""Closing an account: the deletion task on the default queue, its beat sweep, and a
real worker deleting the account after DELETE /users/me."""

from __future__ import annotations

import time
import uuid

import celeryconfig
from db.models import User
from db.models.job import RUNNING
from db.redis_client import get_redis
from db.session import session_scope
from tasks import accounts as account_tasks
from tests import rows
from tests.helpers import API, register
from workers import accounts, cancellation


def make_user(*, deleted_ago: float | None = None) -> uuid.UUID:
    return rows.make_user(verified=False, name="T", deleted_ago=deleted_ago)


def messages_for(user_id: uuid.UUID) -> dict[str, int]:
    from celery import current_app

    with current_app.connection_for_write() as connection:
        redis = connection.default_channel.client
        return {
            queue: sum(str(user_id).encode() in message for message in redis.lrange(queue, 0, -1))
            for queue in ("ai", "default", "email")
        }


def test_the_deletion_task_goes_to_the_default_queue():
    user_id = make_user(deleted_ago=0)
    account_tasks.send_delete(user_id)
    assert messages_for(user_id) == {"ai": 0, "default": 1, "email": 0}


def test_the_sweep_resends_only_deletions_that_have_waited_too_long():
    lost = make_user(deleted_ago=accounts.RESEND_AFTER_SECONDS + 60)
    recent = make_user(deleted_ago=10)
    live = make_user()
    assert account_tasks.sweep_deleted() == 1
    assert messages_for(lost)["default"] == 1
    assert messages_for(recent)["default"] == messages_for(live)["default"] == 0
    schedule = {entry["task"]: entry["schedule"] for entry in celeryconfig.beat_schedule.values()}
    assert "conveyor.accounts.sweep_deleted" in schedule and "tasks.accounts" in celeryconfig.imports


def test_deleting_stops_the_users_running_jobs():
    user_id = make_user(deleted_ago=0)
    job_id = rows.queued_job(user_id, status=RUNNING)
    assert accounts.delete_user(user_id) is True
    assert cancellation.is_requested(get_redis(), job_id)


def test_a_worker_deletes_the_account_after_delete_me(client, celery_worker):
    headers, session = register(client)
    user_id = uuid.UUID(session["user"]["id"])
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    deadline = time.monotonic() + 15
    while True:
        with session_scope() as db:
            if db.get(User, user_id) is None:
                break
        assert time.monotonic() < deadline, "the account was not deleted by the worker"
        time.sleep(0.1)
