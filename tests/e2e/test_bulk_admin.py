"""A bulk admin action too large for one request, through HTTP with a real Celery
worker: answered 202 with the queued operation, worked through by its task while GET
/admin/operations/<id> shows the counts rise, and audited with its filter and final
counts once done."""

import dataclasses
import time

import pytest

from api import create_app
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from tests.api.test_admin import audit, make_admin
from tests.helpers import API

pytestmark = pytest.mark.e2e

ADMIN = f"{API}/admin"
QUEUED_JOBS = 120
FINISHED_JOBS = 10


@pytest.fixture
def client(settings, celery_worker):
    app = create_app(dataclasses.replace(settings, bulk_admin_inline_max=20))
    app.config["TESTING"] = True
    return app.test_client()


def test_a_large_bulk_cancel_runs_in_a_task_and_reports_its_progress(client):
    admin = make_admin(client)
    user = rows.make_user()
    queued = rows.held_jobs(user, QUEUED_JOBS)
    for _ in range(FINISHED_JOBS):
        rows.finished_job(user)

    response = client.post(f"{ADMIN}/jobs/cancel", json={"user": str(user), "max": 1000}, headers=admin)
    assert response.status_code == 202, response.get_json()
    operation = response.get_json()
    assert response.headers["Location"] == f"{ADMIN}/operations/{operation['id']}"
    assert operation["matched"] == QUEUED_JOBS + FINISHED_JOBS
    assert operation["status"] in ("queued", "running", "succeeded")

    seen = []
    deadline = time.monotonic() + 60
    while True:
        shown = client.get(response.headers["Location"], headers=admin).get_json()
        seen.append((shown["status"], shown["done"] + shown["skipped"] + shown["failed"]))
        if shown["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"still {shown} after 60 s"
        time.sleep(0.02)

    matched = QUEUED_JOBS + FINISHED_JOBS
    assert any(status == "running" and 0 < count < matched for status, count in seen), seen
    assert [count for _, count in seen] == sorted(count for _, count in seen)  # never goes back
    assert shown["status"] == "succeeded" and shown["finished_at"] is not None
    assert (shown["matched"], shown["done"], shown["skipped"], shown["failed"]) == (
        matched,
        QUEUED_JOBS,
        FINISHED_JOBS,
        0,
    )
    with session_scope() as session:
        assert {jobs.get(session, job_id=job_id).status for job_id in queued} == {"canceled"}

    entry = audit(client, admin, action="jobs.bulk_cancel")[0]
    assert entry["target_id"] == operation["id"]
    assert entry["details"]["filter"] == {"user": str(user)}
    assert (entry["details"]["done"], entry["details"]["skipped"]) == (QUEUED_JOBS, FINISHED_JOBS)


def test_up_to_the_inline_max_still_runs_in_the_request(client):
    admin = make_admin(client)
    user = rows.make_user()
    rows.held_jobs(user, 5)
    response = client.post(f"{ADMIN}/jobs/cancel", json={"user": str(user)}, headers=admin)
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["status"], response.get_json()["done"]) == ("succeeded", 5)
