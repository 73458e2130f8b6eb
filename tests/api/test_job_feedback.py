"""PUT /jobs/<id>/feedback: one rating per job, which its owner may change or withdraw,
shown on the job; only once the job has finished; nobody else's."""

import uuid

import pytest

from tests import rows
from tests.helpers import API, assert_error, register


@pytest.fixture
def owner(client):
    headers, body = register(client)
    return headers, uuid.UUID(body["user"]["id"])


def put(client, headers, job_id, **body):
    return client.put(f"{API}/jobs/{job_id}/feedback", json=body, headers=headers)


def test_feedback_is_set_changed_shown_and_withdrawn(client, owner):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, output={"text": "hi"})
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()["feedback"] is None

    first = put(client, headers, job_id, rating="down", comment="Too short.")
    assert first.status_code == 200, first.get_json()
    shown = first.get_json()["feedback"]
    assert shown["rating"] == "down" and shown["comment"] == "Too short." and shown["updated_at"]

    second = put(client, headers, job_id, rating="up").get_json()["feedback"]
    assert second["rating"] == "up" and second["comment"] is None
    job = client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()
    assert job["feedback"] == second
    listed = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert listed[0]["feedback"]["rating"] == "up"

    assert client.delete(f"{API}/jobs/{job_id}/feedback", headers=headers).status_code == 204
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()["feedback"] is None


def test_a_failed_job_takes_feedback_too(client, owner):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, status="failed", error_code="provider_error")
    assert put(client, headers, job_id, rating="down").get_json()["feedback"]["rating"] == "down"


def test_a_queued_or_running_job_is_409(client, owner):
    headers, user_id = owner
    for job_id in (rows.queued_job(user_id), rows.running_job(user_id)):
        assert_error(put(client, headers, job_id, rating="up"), 409, "once it has finished")
        assert client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()["feedback"] is None


def test_another_users_job_is_404(client, owner):
    headers, _ = owner
    stranger = rows.finished_job(output={"text": "not yours"})
    assert_error(put(client, headers, stranger, rating="up"), 404, "No job")
    assert_error(client.delete(f"{API}/jobs/{stranger}/feedback", headers=headers), 404, "No job")


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "rating"),
        ({"rating": "meh"}, "rating"),
        ({"rating": "up", "comment": "x" * 2001}, "comment"),
        ({"rating": "up", "comment": 5}, "comment"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(client, owner, body, field):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, output={"text": "hi"})
    response = client.put(f"{API}/jobs/{job_id}/feedback", json=body, headers=headers)
    assert response.status_code == 422 and field in response.get_json()["errors"]["json"], response.get_json()
