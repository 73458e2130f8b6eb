"""The admin API with no worker running: who may use it, every user's jobs with
filters, cancel and retry under the rules, queue stats, and the audit log.
A retried job running to the end is in tests/e2e/test_operations_worker.py."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import update

from db.models import User
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from tests.helpers import API, register, submit
from workers import queues

ADMIN = f"{API}/admin"
SOME_ID = "00000000-0000-4000-8000-000000000000"
ENDPOINTS = [
    ("GET", f"{ADMIN}/jobs"),
    ("GET", f"{ADMIN}/jobs/{SOME_ID}"),
    ("POST", f"{ADMIN}/jobs/{SOME_ID}/retry"),
    ("POST", f"{ADMIN}/jobs/{SOME_ID}/cancel"),
    ("GET", f"{ADMIN}/queues"),
    ("GET", f"{ADMIN}/audit-log"),
]


def make_admin(client, email="ops@example.com"):
    headers, body = register(client, email=email, name="Ops")
    with session_scope() as session:
        session.execute(update(User).where(User.id == uuid.UUID(body["user"]["id"])).values(role="admin"))
    return headers


@pytest.fixture
def admin(client):
    return make_admin(client)


@pytest.fixture
def alice(client):
    return register(client, email="alice@example.com", name="Alice")


def fail(job_id: str, code="provider_error") -> None:
    with session_scope() as session:
        assert jobs.finish(
            session,
            job_id=uuid.UUID(job_id),
            outcome=jobs.Outcome("failed", error_code=code, error_message="The AI provider failed"),
            from_statuses=("queued",),
        )


def audit(client, admin, **query):
    response = client.get(f"{ADMIN}/audit-log", headers=admin, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_anonymous_callers_get_401_and_plain_users_403_everywhere(client, alice):
    for method, path in ENDPOINTS:
        anonymous = client.open(path, method=method)
        assert anonymous.status_code == 401 and anonymous.get_json()["code"] == 401, path
        user = client.open(path, method=method, headers=alice[0])
        assert user.status_code == 403, path
        assert user.get_json()["message"] == "This needs an admin account."


def test_admins_see_every_users_jobs_newest_first(client, admin, alice):
    bob, _ = register(client, email="bob@example.com", name="Bob")
    first = submit(client, alice[0], input={"prompt": "one"}).get_json()["id"]
    second = submit(client, bob, input={"prompt": "two"}).get_json()["id"]
    page = client.get(f"{ADMIN}/jobs", headers=admin).get_json()
    assert [job["id"] for job in page["items"]] == [second, first] and page["next_cursor"] is None
    mine = page["items"][1]
    assert mine["user_id"] == alice[1]["user"]["id"] and mine["queue"] == "ai" and mine["retry_of"] is None
    assert client.get(f"{ADMIN}/jobs/{first}", headers=admin).get_json()["id"] == first


def test_admin_job_filters(client, admin, alice):
    bob, _ = register(client, email="bob@example.com", name="Bob")
    a1 = submit(client, alice[0], input={"prompt": "a1"}).get_json()["id"]
    a2 = submit(client, alice[0], tool="prompt_enhance", input={"prompt": "a2"}).get_json()["id"]
    b1 = submit(client, bob, input={"prompt": "b1"}).get_json()["id"]
    fail(a1)

    def ids(**query):
        response = client.get(f"{ADMIN}/jobs", headers=admin, query_string=query)
        assert response.status_code == 200, response.get_json()
        return {job["id"] for job in response.get_json()["items"]}

    assert ids(user=alice[1]["user"]["id"]) == {a1, a2}
    assert ids(user="ALICE@example.com") == {a1, a2}
    assert ids(user="nobody@example.com") == set()
    assert ids(tool="text") == {a1, b1}
    assert ids(status="failed") == {a1}
    assert ids(status="queued,failed", user="bob@example.com") == {b1}
    with session_scope() as session:
        created = {job.id: job.created_at for job in (jobs.get(session, job_id=uuid.UUID(b1)),)}
    b1_at = created[uuid.UUID(b1)]
    assert ids(created_from=b1_at.isoformat()) == {b1}
    assert b1 not in ids(created_to=b1_at.isoformat())  # created_to is exclusive
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert ids(created_from=future) == set()  # no zone: UTC


def test_admin_job_pages_and_bad_filters(client, admin, alice):
    made = [submit(client, alice[0], input={"prompt": f"p{n}"}).get_json()["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{ADMIN}/jobs", headers=admin, query_string=query).get_json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))

    bad = client.get(f"{ADMIN}/jobs", headers=admin, query_string={"cursor": "nope"})
    assert bad.status_code == 422 and "cursor" in bad.get_json()["errors"]["query"]
    bad = client.get(f"{ADMIN}/jobs", headers=admin, query_string={"status": "lost"})
    assert bad.status_code == 422
    inverted = {"created_from": "2026-02-01T00:00:00Z", "created_to": "2026-01-01T00:00:00Z"}
    bad = client.get(f"{ADMIN}/jobs", headers=admin, query_string=inverted)
    assert bad.status_code == 422 and bad.get_json()["message"] == "created_from must be before created_to."
    assert client.get(f"{ADMIN}/jobs/{SOME_ID}", headers=admin).status_code == 404


def test_an_admin_cancels_any_users_queued_job_and_it_is_audited(client, admin, alice):
    job_id = submit(client, alice[0]).get_json()["id"]
    response = client.post(f"{ADMIN}/jobs/{job_id}/cancel", headers={**admin, "X-Request-ID": "ops-cancel-1"})
    assert response.status_code == 202 and response.get_json()["status"] == "canceled"
    owner_view = client.get(f"{API}/jobs/{job_id}", headers=alice[0]).get_json()
    assert owner_view["status"] == "canceled" and owner_view["error"]["code"] == "canceled"

    [entry] = audit(client, admin)
    assert entry["action"] == "job.cancel" and entry["target_type"] == "job" and entry["target_id"] == job_id
    assert entry["actor_email"] == "ops@example.com" and entry["request_id"] == "ops-cancel-1"
    assert entry["details"] == {"owner_id": alice[1]["user"]["id"], "was": "queued"}


def test_canceling_a_finished_job_is_409_and_not_audited(client, admin, alice):
    job_id = submit(client, alice[0]).get_json()["id"]
    fail(job_id)
    response = client.post(f"{ADMIN}/jobs/{job_id}/cancel", headers=admin)
    assert response.status_code == 409
    assert response.get_json()["message"] == "The job already failed; there is nothing to cancel."
    assert audit(client, admin) == []
    assert client.post(f"{ADMIN}/jobs/{SOME_ID}/cancel", headers=admin).status_code == 404


def test_retry_makes_a_new_linked_job_sent_through_admission(client, admin, alice):
    job_id = submit(
        client, alice[0], input={"prompt": "again"}, webhook_url="http://127.0.0.1:9/hook"
    ).get_json()["id"]
    fail(job_id)
    response = client.post(f"{ADMIN}/jobs/{job_id}/retry", headers={**admin, "X-Request-ID": "ops-retry-1"})
    assert response.status_code == 202, response.get_json()
    new = response.get_json()
    assert response.headers["Location"] == f"{ADMIN}/jobs/{new['id']}"
    assert new["id"] != job_id and new["retry_of"] == job_id and new["status"] == "queued"
    assert new["input"] == {"prompt": "again"} and new["tool"] == "text"
    assert new["user_id"] == alice[1]["user"]["id"] and new["webhook_url"] == "http://127.0.0.1:9/hook"
    assert new["request_id"] == "ops-retry-1"
    # The owner sees it as their own job, linked to the one that failed.
    assert client.get(f"{API}/jobs/{new['id']}", headers=alice[0]).get_json()["retry_of"] == job_id
    with session_scope() as session:  # admitted: its message went to the broker
        assert jobs.get(session, job_id=uuid.UUID(new["id"])).dispatched_at is not None

    [entry] = audit(client, admin)
    assert (entry["action"], entry["target_id"], entry["request_id"]) == ("job.retry", job_id, "ops-retry-1")
    assert entry["details"] == {
        "new_job_id": new["id"],
        "owner_id": alice[1]["user"]["id"],
        "was": "failed",
        "error": "provider_error",
    }

    again = client.post(f"{ADMIN}/jobs/{job_id}/retry", headers=admin)
    assert again.status_code == 409
    assert (
        again.get_json()["message"] == f"This job was already retried as {new['id']}; retry that one instead."
    )
    assert len(audit(client, admin)) == 1


def test_only_failed_canceled_or_expired_jobs_can_be_retried(client, admin, alice):
    job_id = submit(client, alice[0]).get_json()["id"]
    response = client.post(f"{ADMIN}/jobs/{job_id}/retry", headers=admin)
    assert response.status_code == 409
    assert response.get_json()["message"] == (
        "Only a failed, canceled or expired job can be retried; this one is queued."
    )
    assert client.post(f"{ADMIN}/jobs/{SOME_ID}/retry", headers=admin).status_code == 404
    client.post(f"{API}/jobs/{job_id}/cancel", headers=alice[0])
    assert client.post(f"{ADMIN}/jobs/{job_id}/retry", headers=admin).status_code == 202


def test_queue_stats_show_depth_workers_and_jobs_by_status(client, admin, alice):
    before = {q["name"]: q for q in client.get(f"{ADMIN}/queues", headers=admin).get_json()["queues"]}
    assert list(before) == ["ai_priority", "ai", "default", "email", "exports", "maintenance"]
    submit(client, alice[0])
    failed = submit(client, alice[0]).get_json()["id"]
    fail(failed)
    queues.write_heartbeat(get_redis(), hostname="ai@box", queues=["ai_priority", "ai"], interval=5)

    stats = client.get(f"{ADMIN}/queues", headers=admin).get_json()
    after = {q["name"]: q for q in stats["queues"]}
    assert after["ai"]["depth"] == before["ai"]["depth"] + 2  # both were sent; nobody consumes
    assert after["ai"]["workers"] == ["ai@box"] and after["default"]["workers"] == []
    assert stats["jobs"] == {
        "scheduled": 0,
        "queued": 1,
        "running": 0,
        "succeeded": 0,
        "failed": 1,
        "canceled": 0,
        "expired": 0,
    }


def test_the_audit_log_pages_newest_first_and_filters(client, admin, alice):
    ids = [submit(client, alice[0], input={"prompt": f"x{n}"}).get_json()["id"] for n in range(3)]
    for job_id in ids:
        assert client.post(f"{ADMIN}/jobs/{job_id}/cancel", headers=admin).status_code == 202
    fail(submit(client, alice[0]).get_json()["id"])
    retried = client.get(f"{ADMIN}/jobs", headers=admin, query_string={"status": "failed"}).get_json()
    client.post(f"{ADMIN}/jobs/{retried['items'][0]['id']}/retry", headers=admin)

    first = client.get(f"{ADMIN}/audit-log", headers=admin, query_string={"limit": 2}).get_json()
    second = client.get(
        f"{ADMIN}/audit-log", headers=admin, query_string={"limit": 2, "cursor": first["next_cursor"]}
    ).get_json()
    actions = [entry["action"] for entry in first["items"] + second["items"]]
    assert (
        actions == ["job.retry", "job.cancel", "job.cancel", "job.cancel"] and second["next_cursor"] is None
    )
    assert [e["target_id"] for e in audit(client, admin, action="job.cancel")] == list(reversed(ids))
    assert [e["target_id"] for e in audit(client, admin, target_id=ids[0])] == [ids[0]]
