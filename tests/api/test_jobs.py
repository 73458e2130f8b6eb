"""The jobs API without a worker: jobs stay queued, which is what these tests need."""

import uuid

import pytest

from tests.helpers import API, register, submit


@pytest.fixture
def headers(client):
    return register(client)[0]


def test_submit_returns_202_with_location_and_a_queued_job(client, headers):
    response = submit(client, headers, input={"prompt": "Write a haiku about queues."})
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"{API}/jobs/{job['id']}"
    assert job["status"] == "queued" and job["tool"] == "text"
    assert job["input"] == {"prompt": "Write a haiku about queues."}
    assert job["output"] is None and job["error"] is None and job["output_url"] is None
    assert job["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_micros": 0,
        "lane": "standard",
        "cached": False,
    }
    assert job["cached"] is False
    assert job["model"] == "gpt-4o-mini" and job["attempt"] == 0
    assert job["created_at"] and job["started_at"] is None and job["finished_at"] is None


def test_submit_sends_the_message_after_the_row_is_committed(client, headers, settings):
    from celery import current_app

    from db.repositories import jobs
    from db.session import session_scope

    job_id = submit(client, headers).get_json()["id"]
    with session_scope() as session:
        job = jobs.get(session, job_id=uuid.UUID(job_id))
        assert job.dispatched_at is not None
    with current_app.connection_for_write() as connection:
        redis = connection.default_channel.client
        on_ai, on_default = redis.lrange("ai", 0, -1), redis.lrange("default", 0, -1)
    assert sum(job_id.encode() in message for message in on_ai) == 1
    assert not any(job_id.encode() in message for message in on_default)


def test_a_job_the_broker_refuses_is_withdrawn_and_the_client_told_to_retry(client, headers, monkeypatch):
    from tasks import generation

    def refuse(job_id, *, queue):
        raise ConnectionError("broker down")

    monkeypatch.setattr(generation, "dispatch", refuse)
    response = submit(client, {"Idempotency-Key": "retry-me", **headers})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "not accepted" in response.get_json()["message"]
    assert client.get(f"{API}/jobs", headers=headers).get_json()["items"] == []  # nothing kept

    monkeypatch.undo()  # the broker is back: the same key now makes the job
    again = submit(client, {"Idempotency-Key": "retry-me", **headers})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers


def test_the_same_idempotency_key_and_body_return_the_same_job(client, headers):
    key = {"Idempotency-Key": "order-42", **headers}
    first = submit(client, key, input={"prompt": "once"})
    second = submit(client, key, input={"prompt": "once"})
    assert first.status_code == second.status_code == 202
    assert first.get_json()["id"] == second.get_json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    listed = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert len(listed) == 1


def test_the_same_idempotency_key_with_another_body_is_422(client, headers):
    key = {"Idempotency-Key": "order-43", **headers}
    submit(client, key, input={"prompt": "once"})
    response = submit(client, key, input={"prompt": "something else"})
    assert response.status_code == 422
    body = response.get_json()
    assert "Idempotency-Key" in body["message"]
    assert "Idempotency-Key" in body["errors"]["headers"]


def test_idempotency_keys_belong_to_each_user(client, headers):
    other, _ = register(client)
    mine = submit(client, {"Idempotency-Key": "shared", **headers}).get_json()["id"]
    theirs = submit(client, {"Idempotency-Key": "shared", **other}).get_json()["id"]
    assert mine != theirs


def test_list_pages_with_a_cursor_and_filters(client, headers):
    ids = [submit(client, headers, input={"prompt": f"job {n}"}).get_json()["id"] for n in range(5)]
    submit(client, headers, tool="prompt_enhance", input={"prompt": "make this better"})

    page = client.get(f"{API}/jobs?limit=2&tool=text", headers=headers).get_json()
    seen = [job["id"] for job in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            f"{API}/jobs?limit=2&tool=text&cursor={page['next_cursor']}", headers=headers
        ).get_json()
        seen += [job["id"] for job in page["items"]]
    assert seen == list(reversed(ids))

    queued = client.get(f"{API}/jobs?status=queued,running", headers=headers).get_json()["items"]
    assert len(queued) == 6
    assert client.get(f"{API}/jobs?status=succeeded", headers=headers).get_json()["items"] == []


def test_list_rejects_bad_filters_and_cursors(client, headers):
    bad_status = client.get(f"{API}/jobs?status=done", headers=headers)
    assert bad_status.status_code == 422 and "status" in bad_status.get_json()["errors"]["query"]
    bad_limit = client.get(f"{API}/jobs?limit=1000", headers=headers)
    assert bad_limit.status_code == 422 and "limit" in bad_limit.get_json()["errors"]["query"]
    bad_cursor = client.get(f"{API}/jobs?cursor=garbage!", headers=headers)
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.get_json()["errors"]["query"]


def test_get_has_an_etag_and_answers_304_when_unchanged(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    first = client.get(f"{API}/jobs/{job_id}", headers=headers)
    assert first.status_code == 200 and first.headers["ETag"]
    assert first.headers["Retry-After"] == "2"
    again = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""

    client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    changed = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.get_json()["status"] == "canceled"
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert "Retry-After" not in changed.headers


def test_the_etag_follows_every_change_of_a_running_job(client, headers, settings):
    from db.repositories import jobs
    from db.session import session_scope

    job_id = submit(client, headers).get_json()["id"]
    queued = client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    with session_scope() as session:
        jobs.start(session, job_id=uuid.UUID(job_id), lease_seconds=60, max_attempts=3)
    running = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": queued})
    assert running.status_code == 200 and running.get_json()["status"] == "running"
    assert running.headers["Retry-After"] == "1"

    with session_scope() as session:  # the job's lease renewal reports progress
        jobs.renew_lease(session, job_id=uuid.UUID(job_id), lease_seconds=60, progress=40)
    moved = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": running.headers["ETag"]})
    assert moved.status_code == 200 and moved.get_json()["progress"] == 40
    same = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": moved.headers["ETag"]})
    assert same.status_code == 304


def test_a_closed_account_cannot_poll_its_jobs_even_if_redis_forgot_the_logout(client, headers):
    from db.redis_client import get_redis

    job_id = submit(client, headers).get_json()["id"]
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    get_redis().flushdb()  # a Redis restart without persistence: the revoked-session marks are gone
    response = client.get(f"{API}/jobs/{job_id}", headers=headers)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert "no longer exists" in response.get_json()["message"]


def test_a_closed_account_cannot_submit_even_if_redis_forgot_the_logout(client, headers):
    from db.redis_client import get_redis

    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    get_redis().flushdb()
    response = submit(client, headers)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert "no longer exists" in response.get_json()["message"]


def test_cancel_of_a_queued_job_is_immediate_and_final(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    response = client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 202
    job = response.get_json()
    assert job["status"] == "canceled" and job["finished_at"]
    assert job["error"] == {"code": "canceled", "message": "Canceled before it started."}
    # Canceling again is harmless.
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).get_json()["status"] == "canceled"


def test_cancel_of_a_finished_job_is_409(client, headers):
    from db.models.job import SUCCEEDED
    from db.repositories import jobs
    from db.session import session_scope

    job_id = uuid.UUID(submit(client, headers).get_json()["id"])
    with session_scope() as session:
        jobs.start(session, job_id=job_id, lease_seconds=30, max_attempts=3)
        jobs.finish(session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED, output={"text": "done"}))
    response = client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["message"] == "The job already succeeded; there is nothing to cancel."


def test_another_users_job_is_404_everywhere(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    stranger, _ = register(client)
    assert client.get(f"{API}/jobs/{job_id}", headers=stranger).status_code == 404
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=stranger).status_code == 404
    assert client.get(f"{API}/jobs", headers=stranger).get_json()["items"] == []
    missing = client.get(f"{API}/jobs/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404 and missing.get_json()["message"] == "No job with this id."
    assert client.get(f"{API}/jobs/not-a-uuid", headers=headers).status_code == 404


def test_jobs_need_a_token(client):
    assert submit(client, {}).status_code == 401
    assert client.get(f"{API}/jobs").status_code == 401


# ---------------------------------------------------------------- bad input


def test_malformed_json_is_400(client, headers):
    response = client.post(
        f"{API}/jobs",
        data='{"tool": "text", "input": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body == {
        "code": 400,
        "status": "Bad Request",
        "message": "The request body is not valid JSON.",
        "errors": {"json": ["Invalid JSON body."]},
    }


def test_schema_errors_are_422_with_field_errors(client, headers):
    response = client.post(f"{API}/jobs", json={"input": "not an object", "extra": 1}, headers=headers)
    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]
    assert "tool" in errors and "input" in errors and "extra" in errors


def test_unknown_tool_is_422_naming_the_tools(client, headers):
    response = submit(client, headers, tool="telepathy")
    assert response.status_code == 422
    message = response.get_json()["errors"]["json"]["tool"][0]
    assert "telepathy" in message and "roadmap" in message


def test_input_is_validated_against_the_tools_schema(client, headers):
    response = submit(
        client, headers, tool="roadmap", input={"goal": "x", "timeline": "next week", "mood": 1}
    )
    assert response.status_code == 422
    body = response.get_json()
    assert "roadmap" in body["message"]
    errors = body["errors"]["json"]["input"]
    assert "timeline" in errors and errors["mood"] == ["Unknown field."]


def test_unknown_model_is_422(client, headers):
    response = submit(client, headers, model="gpt-17")
    assert response.status_code == 422
    assert "gpt-4o-mini" in response.get_json()["errors"]["json"]["model"][0]


def test_a_webhook_url_is_accepted_and_an_unsafe_one_is_422(client, headers):
    # More in tests/api/test_webhooks.py; 127.0.0.1 is allow-listed for the tests' receivers.
    assert submit(client, headers, webhook_url="http://127.0.0.1:9/hook").status_code == 202
    response = submit(client, headers, webhook_url="https://10.0.0.1/hook")
    assert response.status_code == 422
    assert "private address" in response.get_json()["errors"]["json"]["webhook_url"][0]


def test_a_body_over_the_limit_is_413(client, headers, settings):
    huge = "x" * (settings.max_request_bytes + 1)
    response = submit(client, headers, input={"prompt": huge})
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == 413
    assert (
        body["message"] == f"The request body is too large: the limit is {settings.max_request_bytes} bytes."
    )


def test_unknown_route_and_method_use_the_error_shape(client, headers):
    missing = client.get(f"{API}/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["code"] == 404
    wrong = client.delete(f"{API}/jobs", headers=headers)
    assert wrong.status_code == 405 and wrong.get_json()["message"]
