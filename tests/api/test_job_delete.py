"""DELETE /jobs/<id> with no worker: the owner removes a finished job and what it stored;
a queued or running one, or one being exported, is 409; anyone else's is 404. A job
run by a real worker and then deleted is in tests/e2e/test_job_delete.py."""

import uuid

import pytest

from db.models import Job
from db.models.export import RUNNING
from db.redis_client import get_redis
from db.repositories import exports
from db.session import session_scope
from tests import rows
from tests.helpers import API, assert_error, register
from workers import job_stream
from workers.storage import ObjectNotFound, get_storage, job_output_key


@pytest.fixture
def owner(client):
    headers, body = register(client)
    return headers, uuid.UUID(body["user"]["id"])


def test_a_finished_job_with_a_stored_output_is_gone_with_its_object_and_events(client, owner, settings):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, output=None)
    key = job_output_key(user_id, job_id)
    get_storage(settings).put(key, b'{"text": "big"}', "application/json")
    with session_scope() as session:
        session.get(Job, job_id).output_key = key
    job_stream.publish(get_redis(), job_id, job_stream.DONE, {"status": "succeeded"})
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()["output_url"]

    response = client.delete(f"{API}/jobs/{job_id}", headers=headers)

    assert response.status_code == 204 and response.data == b""
    assert_error(client.get(f"{API}/jobs/{job_id}", headers=headers), 404, "No job")
    assert client.get(f"{API}/jobs", headers=headers).get_json()["items"] == []
    with pytest.raises(ObjectNotFound):
        get_storage(settings).get(key)
    assert get_redis().exists(job_stream.stream_key(job_id)) == 0
    assert_error(client.delete(f"{API}/jobs/{job_id}", headers=headers), 404, "No job")


@pytest.mark.parametrize("status", ["failed", "canceled", "expired"])
def test_every_finished_status_can_be_deleted(client, owner, status):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, status=status, error_code=status)
    assert client.delete(f"{API}/jobs/{job_id}", headers=headers).status_code == 204
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).status_code == 404


def test_a_queued_or_running_job_is_409_and_kept(client, owner):
    headers, user_id = owner
    for job_id in (rows.queued_job(user_id), rows.running_job(user_id)):
        assert_error(client.delete(f"{API}/jobs/{job_id}", headers=headers), 409, "cancel it first")
        assert client.get(f"{API}/jobs/{job_id}", headers=headers).status_code == 200


def test_a_job_being_exported_is_409_until_the_export_ends(client, owner):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, output={"text": "hi"})
    with session_scope() as session:
        exports.create(session, user_id=user_id, format="md", job_id=job_id).status = RUNNING
    assert_error(client.delete(f"{API}/jobs/{job_id}", headers=headers), 409, "export")
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).status_code == 200


def test_another_users_job_is_404_and_kept(client, owner):
    headers, _ = owner
    stranger = rows.finished_job(output={"text": "not yours"})
    assert_error(client.delete(f"{API}/jobs/{stranger}", headers=headers), 404, "No job")
    with session_scope() as session:
        assert session.get(Job, stranger) is not None


def test_an_api_key_may_delete_its_owners_job(client, owner):
    headers, user_id = owner
    key = client.post(f"{API}/api-keys", headers=headers, json={"name": "batch"}).get_json()["key"]
    job_id = rows.finished_job(user_id, output={"text": "hi"})
    assert client.delete(f"{API}/jobs/{job_id}", headers={"X-API-Key": key}).status_code == 204
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).status_code == 404


def test_the_usage_ledger_keeps_a_deleted_jobs_calls(client, owner):
    headers, user_id = owner
    job_id = rows.finished_job(user_id, output={"text": "hi"})
    rows.add_usage(rows.usage_row(user_id, job_id=job_id, tokens=(100, 50), cost_micros=10))
    before = client.get(f"{API}/usage", headers=headers).get_json()["totals"]
    assert before["input_tokens"] == 100
    assert client.delete(f"{API}/jobs/{job_id}", headers=headers).status_code == 204
    assert client.get(f"{API}/usage", headers=headers).get_json()["totals"] == before
