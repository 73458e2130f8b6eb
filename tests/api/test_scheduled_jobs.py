"""Scheduled jobs through the API, with no worker: a job submitted with run_at or
delay_seconds stays `scheduled`, is listed and cancelable, and holds its quota until then."""

import dataclasses
import datetime as dt

import pytest

from tests.api.test_admin import ADMIN, make_admin
from tests.helpers import API, assert_error, queued_tasks, register, submit
from workers import plans


@pytest.fixture
def headers(client):
    return register(client)[0]


def _in(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


def _reserved(client, headers) -> int:
    return client.get(f"{API}/usage", headers=headers).get_json()["quota"]["reserved"]


def test_a_delayed_job_is_scheduled_and_not_sent(client, headers):
    response = submit(client, headers, input={"prompt": "Later, please."}, delay_seconds=3600)

    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["status"] == "scheduled"
    run_at = dt.datetime.fromisoformat(job["run_at"])
    assert dt.timedelta(minutes=59) < run_at - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    # Its start deadline counts from run_at, not from the submit.
    deadline = dt.datetime.fromisoformat(job["expires_at"]) - run_at
    assert deadline == dt.timedelta(
        seconds=client.application.extensions["conveyor.settings"].job_start_deadline
    )
    assert job["id"] not in [args[0] for args in queued_tasks("conveyor.generation.run", "ai")]

    got = client.get(f"{API}/jobs/{job['id']}", headers=headers)
    assert got.get_json()["status"] == "scheduled" and got.get_json()["run_at"] == job["run_at"]
    assert 1 <= int(got.headers["Retry-After"]) <= 60


def test_run_at_is_kept_and_listed_under_scheduled(client, headers):
    run_at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    scheduled = submit(client, headers, run_at=run_at.isoformat()).get_json()
    now = submit(client, headers).get_json()

    assert dt.datetime.fromisoformat(scheduled["run_at"]) == run_at
    assert now["status"] == "queued" and now["run_at"] is None
    listed = client.get(f"{API}/jobs?status=scheduled", headers=headers).get_json()["items"]
    assert [job["id"] for job in listed] == [scheduled["id"]]


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ({"run_at": "2020-01-01T00:00:00Z"}, "run_at", "future"),
        ({"run_at": "2030-01-01T09:00:00"}, "run_at", "timezone"),
        ({"run_at": "tomorrow"}, "run_at", "ISO 8601"),
        ({"run_at": _in(31 * 86400)}, "run_at", "30 days"),
        ({"delay_seconds": 0}, "delay_seconds", "from 1"),
        ({"delay_seconds": 31 * 86400}, "delay_seconds", "30 days"),
        ({"delay_seconds": "10"}, "delay_seconds", "integer"),
        ({"run_at": _in(3600), "delay_seconds": 60}, "delay_seconds", "one of the two"),
    ],
)
def test_a_bad_schedule_is_a_422_naming_the_field(client, headers, extra, field, fragment):
    response = submit(client, headers, **extra)

    assert_error(response, 422, "")
    messages = response.get_json()["errors"]["json"][field]
    assert any(fragment in message for message in messages), messages


def test_cancel_of_a_scheduled_job_is_at_once_and_gives_its_quota_back(client, headers):
    job = submit(client, headers, delay_seconds=600).get_json()
    assert _reserved(client, headers) > 0

    response = client.post(f"{API}/jobs/{job['id']}/cancel", headers=headers)

    assert response.status_code == 202
    assert response.get_json()["status"] == "canceled"
    assert response.get_json()["error"]["code"] == "canceled"
    assert _reserved(client, headers) == 0
    assert client.get(f"{API}/jobs?status=scheduled", headers=headers).get_json()["items"] == []


def test_a_plan_caps_the_scheduled_jobs_a_user_holds(client, headers, monkeypatch):
    monkeypatch.setitem(plans.PLANS, "free", dataclasses.replace(plans.PLANS["free"], scheduled_limit=2))
    first = submit(client, headers, delay_seconds=600).get_json()
    submit(client, headers, delay_seconds=600)

    refused = submit(client, headers, delay_seconds=600)

    assert_error(refused, 429, "allows 2 scheduled jobs")
    assert refused.get_json()["errors"]["scheduled_limit"] == {"limit": 2, "scheduled": 2}
    assert submit(client, headers).status_code == 202  # a job for now is not capped
    client.post(f"{API}/jobs/{first['id']}/cancel", headers=headers)
    assert submit(client, headers, delay_seconds=600).status_code == 202


def test_the_plans_say_how_many_scheduled_jobs_they_hold(client):
    listed = client.get(f"{API}/billing/plans").get_json()["items"]
    assert {plan["name"]: plan["scheduled_limit"] for plan in listed} == {
        name: plan.scheduled_limit for name, plan in plans.PLANS.items()
    }


def test_an_idempotent_retry_of_a_scheduled_submit_replays_it(client, headers):
    key = {"Idempotency-Key": "schedule-1"}
    body = {"tool": "text", "input": {"prompt": "Hi"}, "delay_seconds": 60}
    first = client.post(f"{API}/jobs", json=body, headers={**headers, **key})
    again = client.post(f"{API}/jobs", json=body, headers={**headers, **key})
    other = client.post(f"{API}/jobs", json={**body, "delay_seconds": 61}, headers={**headers, **key})

    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert other.status_code == 422


def test_a_canceled_scheduled_job_has_its_webhook_as_any_job(client, headers):
    job_id = submit(client, headers, delay_seconds=600, webhook_url="http://127.0.0.1:9/hook").get_json()[
        "id"
    ]

    client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)

    [item] = client.get(f"{API}/jobs/{job_id}/webhook-deliveries", headers=headers).get_json()["items"]
    assert item["event"] == "job.canceled"


def test_an_admin_sees_and_cancels_scheduled_jobs(client, headers):
    job_id = submit(client, headers, delay_seconds=600).get_json()["id"]
    admin = make_admin(client)

    listed = client.get(f"{ADMIN}/jobs?status=scheduled", headers=admin).get_json()["items"]
    assert job_id in [job["id"] for job in listed]
    assert client.post(f"{ADMIN}/jobs/{job_id}/cancel", headers=admin).get_json()["status"] == "canceled"
