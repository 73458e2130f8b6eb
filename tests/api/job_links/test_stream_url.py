"""A job's stream URL: a browser's EventSource opens it with no header (a signed,
job-scoped, expiring token), with no worker running: events are published as a worker
would."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from tests.api.job_links.links import ORIGIN, assert_error, parse, path_of, publish_run, stream
from tests.helpers import API, submit
from workers import job_stream


def test_the_stream_url_streams_the_jobs_events_with_no_header(client, headers):
    job = submit(client, headers).get_json()
    publish_run(job["id"])
    response = stream(client, job["urls"]["stream"])  # no Authorization, no API key
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    got = parse(response.get_data(as_text=True))
    assert [event["event"] for event in got] == ["status", "delta", "delta", "delta", "done"]
    assert (
        "".join(event["data"]["text"] for event in got if event["event"] == "delta") == "Queues are patient."
    )


@pytest.mark.parametrize("resume_by", ["Last-Event-ID header", "last_event_id query"])
def test_a_stream_cut_mid_way_resumes_without_losing_or_repeating_an_event(client, headers, resume_by):
    job = submit(client, headers).get_json()
    redis, job_uuid = get_redis(), uuid.UUID(job["id"])
    job_stream.publish(redis, job_uuid, job_stream.STATUS, {"status": "running", "attempt": 1})
    job_stream.publish(redis, job_uuid, job_stream.DELTA, {"text": "one "})

    first = stream(client, job["urls"]["stream"], buffered=False)
    chunks, seen = iter(first.response), []
    while len(seen) < 2:  # the two events so far, then the connection drops
        seen += parse(next(chunks).decode())
    first.close()

    job_stream.publish(redis, job_uuid, job_stream.DELTA, {"text": "two"})
    job_stream.publish(redis, job_uuid, job_stream.DONE, {"status": "succeeded", "error": None})
    last = seen[-1]["id"]
    if resume_by == "Last-Event-ID header":  # what EventSource sends when it reconnects
        rest = stream(client, job["urls"]["stream"], headers={"Last-Event-ID": last})
    else:
        rest = stream(client, f"{job['urls']['stream']}&last_event_id={last}")
    assert rest.status_code == 200
    resumed = seen + parse(rest.get_data(as_text=True))

    everything = parse(stream(client, job["urls"]["stream"]).get_data(as_text=True))
    assert resumed == everything
    assert [event["data"].get("text") for event in resumed if event["event"] == "delta"] == ["one ", "two"]


def test_the_stream_url_of_one_job_is_refused_for_another(client, headers):
    mine = submit(client, headers).get_json()
    other = submit(client, headers).get_json()  # the same owner's: the token is per job, not per user
    token = parse_qs(urlsplit(mine["urls"]["stream"]).query)["token"][0]
    response = client.get(f"{API}/jobs/{other['id']}/events?token={token}")
    assert_error(response, 401, "not valid for this job")
    assert f"GET /api/v1/jobs/{other['id']}" in response.get_json()["message"]


@pytest.mark.parametrize("token", ["", "x" * 48, "not-a-token", "%e9%00"])
def test_a_token_that_is_not_one_is_refused(client, headers, token):
    job_id = submit(client, headers).get_json()["id"]
    response = client.get(f"{API}/jobs/{job_id}/events?token={token}")
    if "%00" in token:  # the input gate answers first: nothing with a NUL is read further
        assert_error(response, 422, "cannot be accepted")
        assert "token" in response.get_json()["errors"]["query"]
    else:
        assert_error(response, 401, "not valid for this job")


def test_an_access_token_is_no_stream_token(client, signup):
    headers, body = signup
    job_id = submit(client, headers).get_json()["id"]
    response = client.get(f"{API}/jobs/{job_id}/events", query_string={"token": body["access_token"]})
    assert_error(response, 401, "not valid for this job")


def test_an_expired_stream_url_is_refused_and_a_fresh_one_works(client, headers, clock, settings):
    job = submit(client, headers).get_json()
    publish_run(job["id"])
    with session_scope() as session:
        jobs.finish(
            session,
            job_id=uuid.UUID(job["id"]),
            outcome=jobs.Outcome("succeeded", output={"text": "Done."}),
            from_statuses=("queued",),
        )
    finished = client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()
    assert stream(client, finished["urls"]["stream"]).status_code == 200

    clock[0] += settings.stream_token_grace  # the job ended more than the grace ago
    response = stream(client, finished["urls"]["stream"])
    assert_error(response, 410, "has expired")
    assert f"GET /api/v1/jobs/{job['id']} again" in response.get_json()["message"]

    fresh = client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()["urls"]["stream"]
    assert fresh != finished["urls"]["stream"]
    assert parse(stream(client, fresh).get_data(as_text=True))[-1]["event"] == "done"


def test_a_running_jobs_stream_url_lasts_until_the_bound(client, headers, clock, settings):
    job = submit(client, headers).get_json()
    publish_run(job["id"])  # the events are there, the row still says queued
    clock[0] += settings.stream_token_ttl - 1
    assert stream(client, job["urls"]["stream"]).status_code == 200
    clock[0] += 1
    assert_error(stream(client, job["urls"]["stream"]), 410, "has expired")


def test_a_stream_url_is_refused_once_the_account_is_closed(client, headers):
    job = submit(client, headers).get_json()
    publish_run(job["id"])
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    assert_error(stream(client, job["urls"]["stream"]), 401, "no longer exists")


def test_a_stream_token_is_no_credential_anywhere_else(client, headers):
    job = submit(client, headers).get_json()
    token = parse_qs(urlsplit(job["urls"]["stream"]).query)["token"][0]
    as_bearer = {"Authorization": f"Bearer {token}"}
    assert_error(client.get(f"{API}/jobs/{job['id']}", headers=as_bearer), 401, "not valid")
    assert_error(client.get(f"{API}/jobs/{job['id']}/events", headers=as_bearer), 401, "not valid")
    assert_error(client.get(f"{API}/jobs/{job['id']}?token={token}"), 401, "Authentication is required")
    assert_error(
        client.post(f"{API}/jobs/{job['id']}/cancel?token={token}"), 401, "Authentication is required"
    )
    assert client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()["status"] == "queued"


def test_the_stream_url_holds_no_access_token(client, signup):
    headers, body = signup
    stream_url = submit(client, headers).get_json()["urls"]["stream"]
    for part in body["access_token"].split("."):
        assert part not in stream_url
    assert body["refresh_token"].split(".")[2] not in stream_url


def test_an_event_stream_opens_from_another_origin(client, headers):
    job = submit(client, headers).get_json()
    publish_run(job["id"])
    response = stream(client, job["urls"]["stream"], headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Credentials" not in response.headers
    # A reconnect sends Last-Event-ID, which browsers may ask about first.
    preflight = client.options(
        path_of(job["urls"]["stream"]),
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "last-event-id" in preflight.headers["Access-Control-Allow-Headers"].lower()
