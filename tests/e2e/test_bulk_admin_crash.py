"""A bulk admin action whose task is killed mid-run, with real worker and beat processes:
the killed run's message comes back and finds the operation still leased, the beat's
sweep re-sends it once the lease lapses, and the next run carries on from the last chunk
recorded to the end. Every matched job ends canceled, the counts add up to the match,
and the operation says how often it was resumed."""

import dataclasses
import datetime as dt
import os
import signal
import time

import pytest

from api import create_app
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from tests.api.test_admin import make_admin
from tests.fakes.services import celery_beat, celery_worker, wait_until
from tests.helpers import API

pytestmark = pytest.mark.e2e

HELD_JOBS = 2000  # a few seconds of cancels: long enough to kill the run in the middle
LEASE_SECONDS = 2


@pytest.fixture
def env():
    return {**os.environ, "BULK_ADMIN_LEASE_SECONDS": str(LEASE_SECONDS), "MAINTENANCE_INTERVAL": "1"}


@pytest.fixture
def client(settings):
    app = create_app(dataclasses.replace(settings, bulk_admin_inline_max=20))
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def worker_and_beat(env, tmp_path):
    worker = celery_worker(env, tmp_path / "worker.log", queues="default,maintenance", name="bulk")
    beat = celery_beat(env, tmp_path / "beat.log", tmp_path / "beat-schedule")
    wait_until(lambda: "ready." in worker.log(), 30, message="the worker to be ready")
    yield worker
    beat.stop()
    worker.stop()


def held_jobs(user, count):
    """Queued jobs held for the owner's running limit (no message), in one transaction."""
    with session_scope() as session:
        return [
            jobs.create(
                session,
                user_id=user,
                tool="text",
                input={"prompt": f"n{n}"},
                model="gpt-4o-mini",
                queue="ai",
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            ).id
            for n in range(count)
        ]


def test_a_bulk_cancel_whose_task_is_killed_is_resumed_and_finishes(client, worker_and_beat):
    admin = make_admin(client)
    user = rows.make_user()
    held = held_jobs(user, HELD_JOBS)

    response = client.post(f"{API}/admin/jobs/cancel", json={"user": str(user), "max": 5000}, headers=admin)
    assert response.status_code == 202, response.get_json()
    location = response.headers["Location"]

    def shown():
        return client.get(location, headers=admin).get_json()

    deadline = time.monotonic() + 60
    while (now := shown())["done"] < 100:
        assert now["status"] in ("queued", "running") and time.monotonic() < deadline, now
        time.sleep(0.02)
    [child] = worker_and_beat.children()
    os.kill(child, signal.SIGKILL)  # the pool process running the operation's task
    killed_at = shown()
    assert killed_at["status"] == "running" and killed_at["done"] < HELD_JOBS, killed_at

    wait_until(lambda: shown()["status"] not in ("queued", "running"), 90, message="the operation to end")
    final = shown()
    assert final["status"] == "succeeded", final
    assert (final["matched"], final["done"] + final["skipped"], final["failed"]) == (HELD_JOBS, HELD_JOBS, 0)
    assert final["resumes"] >= 1, final  # the sweep re-sent it after the kill
    with session_scope() as session:
        assert {jobs.get(session, job_id=job_id).status for job_id in held} == {"canceled"}
