"""A bulk admin action whose task is killed mid-run, with real worker and beat processes:
the killed run's message comes back (late acks) and takes the operation over if its
lease has lapsed, or finds it still leased and leaves it to the beat's sweep, which
re-sends it once the lease lapses (counted in `resumes`); either way the next run
carries on from the last chunk recorded to the end. Every matched job ends canceled
and the counts add up to the match."""

import dataclasses
import os
import signal
import time

import pytest

from api import create_app
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from tests.api.test_admin import make_admin
from tests.fakes.services import wait_until
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


def kill_the_running_task(worker) -> None:
    """SIGKILL the pool process while it runs one of the operation's runs. A run hands over
    to the next message every second: a kill that lands in that gap (Celery logs no lost
    task) is made again."""
    for _ in range(5):
        [child] = worker.children()
        os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if "WorkerLostError" in worker.log():
                return
            time.sleep(0.05)
        wait_until(
            lambda killed=child: worker.children() not in ([], [killed]), 10, message="a new pool process"
        )
    raise AssertionError("no kill landed on a running task")


def test_a_bulk_cancel_whose_task_is_killed_is_resumed_and_finishes(client, processes):
    start_worker, start_beat = processes
    worker = start_worker("bulk", queues="default,maintenance")
    start_beat()
    admin = make_admin(client)
    user = rows.make_user()
    held = rows.held_jobs(user, HELD_JOBS)

    response = client.post(f"{API}/admin/jobs/cancel", json={"user": str(user), "max": 5000}, headers=admin)
    assert response.status_code == 202, response.get_json()
    location = response.headers["Location"]

    def shown():
        return client.get(location, headers=admin).get_json()

    deadline = time.monotonic() + 60
    while (now := shown())["done"] < 100:
        assert now["status"] in ("queued", "running") and time.monotonic() < deadline, now
        time.sleep(0.02)
    kill_the_running_task(worker)
    killed_at = shown()
    assert killed_at["status"] == "running" and killed_at["done"] < HELD_JOBS, killed_at

    wait_until(lambda: shown()["status"] not in ("queued", "running"), 90, message="the operation to end")
    final = shown()
    assert final["status"] == "succeeded", final
    assert (final["matched"], final["done"] + final["skipped"], final["failed"]) == (HELD_JOBS, HELD_JOBS, 0)
    assert final["resumes"] in (0, 1), final  # 1: the sweep re-sent it
    with session_scope() as session:
        assert {jobs.get(session, job_id=job_id).status for job_id in held} == {"canceled"}
