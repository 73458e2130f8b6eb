"""Bulk admin actions with no worker: a dry run counts, then the action acts through the
single-job rules, audited with its filter and counts; more matches than `max` is 409;
purge removes old finished jobs with their stored objects."""

import datetime as dt
import uuid

import pytest

from tests import rows
from tests.api.test_admin import audit, make_admin
from tests.helpers import API, assert_error
from workers.storage import ObjectNotFound, get_storage, job_output_key

ADMIN = f"{API}/admin"


@pytest.fixture
def admin(client):
    return make_admin(client)


def post(client, admin, action, **body):
    response = client.post(f"{ADMIN}/jobs/{action}", json=body, headers=admin)
    return response


def status_of(client, admin, job_id):
    return client.get(f"{ADMIN}/jobs/{job_id}", headers=admin).get_json()["status"]


def test_bulk_retry_counts_then_retries_the_failed_jobs_of_a_code(client, admin):
    user = rows.make_user()
    failed = [rows.finished_job(user, status="failed", error_code="provider_error") for _ in range(2)]
    rows.finished_job(user, status="failed", error_code="timeout")
    rows.finished_job(user, output={"text": "fine"})

    dry = post(client, admin, "retry", status=["failed"], error_code="provider_error", dry_run=True)
    assert dry.status_code == 200 and dry.get_json()["matched"] == 2 and dry.get_json()["id"] is None
    assert len(client.get(f"{ADMIN}/jobs", headers=admin).get_json()["items"]) == 4  # nothing made

    done = post(client, admin, "retry", status=["failed"], error_code="provider_error").get_json()
    assert (done["matched"], done["done"], done["skipped"], done["status"]) == (2, 2, 0, "succeeded")
    retried = {j["retry_of"] for j in client.get(f"{ADMIN}/jobs", headers=admin).get_json()["items"]}
    assert {str(job_id) for job_id in failed} <= retried

    entry = audit(client, admin, action="jobs.bulk_retry")[0]
    assert entry["target_id"] == done["id"]
    assert entry["details"]["filter"] == {"status": ["failed"], "error_code": "provider_error"}
    assert (entry["details"]["matched"], entry["details"]["done"]) == (2, 2)
    shown = client.get(f"{ADMIN}/operations/{done['id']}", headers=admin).get_json()
    assert shown["done"] == 2 and shown["action"] == "retry"


def test_bulk_cancel_cancels_queued_jobs_and_skips_finished_ones(client, admin):
    user = rows.make_user()
    queued = [rows.queued_job(user) for _ in range(3)]
    rows.finished_job(user, output={"text": "done"})
    done = post(client, admin, "cancel", user=str(user)).get_json()
    assert (done["matched"], done["done"], done["skipped"]) == (4, 3, 1)
    assert {status_of(client, admin, job_id) for job_id in queued} == {"canceled"}
    assert audit(client, admin, action="jobs.bulk_cancel")[0]["details"]["skipped"] == 1


def test_more_matches_than_max_is_409_and_nothing_changes(client, admin):
    user = rows.make_user()
    queued = [rows.queued_job(user) for _ in range(3)]
    assert_error(post(client, admin, "cancel", user=str(user), max=2), 409, "3 jobs match")
    assert {status_of(client, admin, job_id) for job_id in queued} == {"queued"}


def test_purge_removes_old_finished_jobs_and_their_objects(client, admin, settings):
    user = rows.make_user()
    old = rows.finished_job(user, output={"text": "old"})
    key = job_output_key(user, old)
    get_storage(settings).put(key, b"{}", "application/json")
    rows.age("jobs", old, days=40, columns=("created_at", "started_at", "finished_at"))
    recent = rows.finished_job(user, output={"text": "new"})
    still_running = rows.running_job(user)
    rows.age("jobs", still_running, days=40, columns=("created_at",))
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).isoformat()

    assert post(client, admin, "purge", before=before, dry_run=True).get_json()["matched"] == 1
    done = post(client, admin, "purge", before=before).get_json()
    assert (done["matched"], done["done"]) == (1, 1)
    assert client.get(f"{ADMIN}/jobs/{old}", headers=admin).status_code == 404
    assert status_of(client, admin, recent) == "succeeded"
    assert status_of(client, admin, still_running) == "running"
    with pytest.raises(ObjectNotFound):
        get_storage(settings).get(key)
    assert audit(client, admin, action="jobs.bulk_purge")[0]["details"]["done"] == 1


@pytest.mark.parametrize(
    "action, body, field",
    [
        ("retry", {"max": 0}, "max"),
        ("retry", {"max": 100_001}, "max"),
        ("cancel", {"status": ["nope"]}, "status"),
        ("purge", {}, "before"),
    ],
)
def test_bad_bodies_are_422(client, admin, action, body, field):
    response = post(client, admin, action, **body)
    assert response.status_code == 422 and field in response.get_json()["errors"]["json"], response.get_json()


def test_plain_users_get_403_and_unknown_operations_404(client, admin):
    from tests.helpers import register

    user, _ = register(client)
    assert post(client, user, "retry").status_code == 403
    assert client.get(f"{ADMIN}/operations/{uuid.uuid4()}", headers=admin).status_code == 404


def test_more_matches_than_the_inline_max_are_answered_202_and_left_to_a_task(settings):
    import dataclasses

    from api import create_app
    from tests.helpers import queued_tasks

    client = create_app(dataclasses.replace(settings, bulk_admin_inline_max=2)).test_client()
    admin = make_admin(client)
    user = rows.make_user()
    queued = [rows.queued_job(user) for _ in range(3)]

    response = post(client, admin, "cancel", user=str(user))
    assert response.status_code == 202, response.get_json()
    operation = response.get_json()
    assert (operation["status"], operation["matched"], operation["done"]) == ("queued", 3, 0)
    assert response.headers["Location"] == f"{ADMIN}/operations/{operation['id']}"
    assert [operation["id"]] in queued_tasks("conveyor.admin.bulk_run")  # no worker here takes it
    assert client.get(response.headers["Location"], headers=admin).get_json()["status"] == "queued"
    assert {status_of(client, admin, job_id) for job_id in queued} == {"queued"}
