"""A job's `urls`: absolute links on PUBLIC_BASE_URL in every representation, and a
stream URL a browser's EventSource opens with no header (a signed, job-scoped,
expiring token), with no worker running: events are published as a worker would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from api import create_app
from api.services import stream_tokens
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from tests.api.test_admin import fail, make_admin
from tests.helpers import API, register, submit
from workers import job_links
from workers import job_stream as events

BASE = "https://conveyor.example.test/behind-a-proxy"
ORIGIN = "https://app.example.test"
NOW = 1_899_999_900.0  # a fixed clock, at the start of a step (half the default grace)


@pytest.fixture
def app(settings):
    app = create_app(dataclasses.replace(settings, public_base_url=BASE, cors_origins=(ORIGIN,)))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def clock(monkeypatch):
    """The stream tokens' clock, set by the test (no sleeping to reach an expiry)."""
    now = [NOW]
    monkeypatch.setattr(job_links, "clock", lambda: now[0])
    return now


@pytest.fixture
def signup(client):
    headers, body = register(client)
    return headers, body


@pytest.fixture
def headers(signup):
    return signup[0]


def path_of(url: str) -> str:
    """The request path and query of an absolute URL on BASE (what the test client opens)."""
    assert url.startswith(BASE + "/"), url
    return url[len(BASE) :]


def stream(client, url: str, **extra):
    return client.get(path_of(url), **extra)


def parse(body: str) -> list[dict]:
    """An SSE body as [{id, event, data}], without the retry line and comments."""
    found = []
    for block in body.split("\n\n"):
        if not block or block.startswith((":", "retry:")):
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append({"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])})
    return found


def publish_run(job_id: str, texts=("Queues ", "are ", "patient.")) -> None:
    """A job's events as a worker publishes them: running, the text, done."""
    redis, job = get_redis(), uuid.UUID(job_id)
    events.publish(redis, job, events.STATUS, {"status": "running", "attempt": 1})
    for text in texts:
        events.publish(redis, job, events.DELTA, {"text": text})
    events.publish(redis, job, events.DONE, {"status": "succeeded", "error": None})


def assert_error(response, status: int, words: str) -> None:
    body = response.get_json()
    assert response.status_code == status, body
    assert body["code"] == status and isinstance(body["status"], str)
    assert words in body["message"], body["message"]


def assert_links(job: dict, *, manage: str = f"{API}/jobs/") -> None:
    urls = job["urls"]
    assert urls["get"] == f"{BASE}{manage}{job['id']}"
    assert urls["cancel"] == f"{BASE}{manage}{job['id']}/cancel"
    stream_url = urlsplit(urls["stream"])
    assert (
        f"{stream_url.scheme}://{stream_url.netloc}{stream_url.path}"
        == f"{BASE}{API}/jobs/{job['id']}/events"
    )
    assert list(parse_qs(stream_url.query)) == ["token"]


# ---------------------------------------------------------------- every representation


def test_every_representation_of_a_job_carries_its_absolute_urls(client, headers):
    submitted = submit(client, headers)
    assert submitted.status_code == 202
    job = submitted.get_json()
    assert_links(job)
    job_id = job["id"]

    assert_links(client.get(f"{API}/jobs/{job_id}", headers=headers).get_json())
    long_polled = client.get(f"{API}/jobs/{job_id}?wait=1", headers={**headers, "If-None-Match": '"stale"'})
    assert long_polled.status_code == 200
    assert_links(long_polled.get_json())
    (listed,) = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert_links(listed)
    canceled = client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    assert canceled.status_code == 202
    assert_links(canceled.get_json())


def test_a_conversations_reply_job_carries_its_urls(client, headers):
    conversation = client.post(f"{API}/conversations", json={"tool": "coach"}, headers=headers).get_json()
    reply = client.post(
        f"{API}/conversations/{conversation['id']}/messages", json={"content": "Hello"}, headers=headers
    )
    assert reply.status_code == 202
    assert_links(reply.get_json())


def test_admin_representations_link_to_the_admin_routes_and_the_same_stream(client, headers):
    admin = make_admin(client)
    job_id = submit(client, headers).get_json()["id"]
    admin_jobs = f"{API}/admin/jobs/"

    (listed,) = client.get(f"{API}/admin/jobs", headers=admin).get_json()["items"]
    assert_links(listed, manage=admin_jobs)
    assert_links(client.get(f"{admin_jobs}{job_id}", headers=admin).get_json(), manage=admin_jobs)
    canceled = client.post(f"{admin_jobs}{job_id}/cancel", headers=admin)
    assert canceled.status_code == 202
    assert_links(canceled.get_json(), manage=admin_jobs)

    failed_id = submit(client, headers).get_json()["id"]
    fail(failed_id)
    retried = client.post(f"{admin_jobs}{failed_id}/retry", headers=admin)
    assert retried.status_code == 202
    assert_links(retried.get_json(), manage=admin_jobs)
    # The owner's stream URL of the retry, opened by anyone holding it, streams that job.
    publish_run(retried.get_json()["id"])
    body = stream(client, retried.get_json()["urls"]["stream"]).get_data(as_text=True)
    assert parse(body)[-1]["event"] == "done"


# ---------------------------------------------------------------- the stream URL


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
    events.publish(redis, job_uuid, events.STATUS, {"status": "running", "attempt": 1})
    events.publish(redis, job_uuid, events.DELTA, {"text": "one "})

    first = stream(client, job["urls"]["stream"], buffered=False)
    chunks, seen = iter(first.response), []
    while len(seen) < 2:  # the two events so far, then the connection drops
        seen += parse(next(chunks).decode())
    first.close()

    events.publish(redis, job_uuid, events.DELTA, {"text": "two"})
    events.publish(redis, job_uuid, events.DONE, {"status": "succeeded", "error": None})
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
            status="succeeded",
            output={"text": "Done."},
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


# ---------------------------------------------------------------- polls stay cheap


def test_a_repeated_poll_of_an_unchanged_job_still_gets_304(client, headers, clock, settings):
    job_id = submit(client, headers).get_json()["id"]
    first = client.get(f"{API}/jobs/{job_id}", headers=headers)
    etag = first.headers["ETag"]
    clock[0] += settings.stream_token_grace // 2 - 1  # within the step: the same token
    for _ in range(3):
        again = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": etag})
        assert again.status_code == 304
    # Once the step turns the URL is renewed, and the client gets it (not a 304 that
    # would leave it holding a URL nearer its end).
    clock[0] += 1
    renewed = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": etag})
    assert renewed.status_code == 200
    assert renewed.get_json()["urls"]["stream"] != first.get_json()["urls"]["stream"]


def test_stream_token_lifetime_rules(settings, clock):
    ttl, grace = settings.stream_token_ttl, settings.stream_token_grace
    running = _Job(status="running", finished_at=None)
    assert job_links.expiry(running, settings=settings) == NOW + ttl  # at the bound
    just_now = _Job(status="succeeded", finished_at=dt.datetime.fromtimestamp(NOW + 5, dt.UTC))
    assert job_links.expiry(just_now, settings=settings) == NOW + 5 + grace
    long_ago = _Job(status="failed", finished_at=dt.datetime.fromtimestamp(NOW - 7 * 86400, dt.UTC))
    assert job_links.expiry(long_ago, settings=settings) == NOW + grace  # opens, to replay
    short = dataclasses.replace(settings, stream_token_ttl=grace)
    assert job_links.expiry(just_now, settings=short) == NOW + grace  # never past the bound


@dataclasses.dataclass
class _Job:
    status: str
    finished_at: object


def test_the_openapi_spec_documents_the_urls_and_the_token(client):
    spec = client.get(f"{API}/openapi.json").get_json()
    job = spec["components"]["schemas"]["Job"]["properties"]["urls"]
    assert set(job["properties"]) == {"get", "cancel", "stream"}
    assert "EventSource" in job["properties"]["stream"]["description"]
    events_route = spec["paths"]["/api/v1/jobs/{job_id}/events"]["get"]
    assert {"streamToken": []} in events_route["security"]
    assert "token" in [parameter["name"] for parameter in events_route["parameters"]]
    assert "410" in events_route["responses"]
    assert spec["components"]["securitySchemes"]["streamToken"] == {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": spec["components"]["securitySchemes"]["streamToken"]["description"],
    }


def test_an_open_stream_is_told_when_its_token_lapses(client, headers, clock):
    # What a stream opened with the token asks as it runs (api/services/live.py).
    job = submit(client, headers).get_json()
    token = parse_qs(urlsplit(job["urls"]["stream"]).query)["token"][0]
    grant = stream_tokens.verify(
        token, job_id=uuid.UUID(job["id"]), settings=client.application.extensions["conveyor.settings"]
    )
    assert stream_tokens.lapsed(grant) is None
    clock[0] = grant.expires_at
    assert "has expired" in stream_tokens.lapsed(grant)
    clock[0] = NOW
    client.delete(f"{API}/users/me", headers=headers)
    assert "no longer exists" in stream_tokens.lapsed(grant)


def test_reconnecting_after_done_is_told_to_stop(client, headers):
    # An EventSource reconnects whenever a stream ends; 204 is what makes it stop.
    job = submit(client, headers).get_json()
    with session_scope() as session:
        jobs.finish(
            session, job_id=uuid.UUID(job["id"]), status="succeeded", output={}, from_statuses=("queued",)
        )
    publish_run(job["id"])
    done = parse(stream(client, job["urls"]["stream"]).get_data(as_text=True))[-1]
    assert done["event"] == "done"
    again = stream(client, job["urls"]["stream"], headers={"Last-Event-ID": done["id"]})
    assert again.status_code == 204 and again.get_data() == b""


# ---------------------------------------------------------------- an open stream's credential


def test_a_stream_opened_by_token_ends_when_the_token_expires(client, headers, clock):
    job = submit(client, headers).get_json()
    response = stream(client, job["urls"]["stream"], buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"  # open; no event yet
    clock[0] += 10 * 86400  # long past its bound
    (ended,) = parse("".join(chunk.decode() for chunk in chunks))
    assert ended["event"] == "error" and ended["data"]["code"] == 401
    assert "has expired" in ended["data"]["message"]


def test_a_stream_opened_by_token_ends_when_the_account_is_closed(client, headers):
    job = submit(client, headers).get_json()
    response = stream(client, job["urls"]["stream"], buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    (ended,) = parse("".join(chunk.decode() for chunk in chunks))
    assert ended["event"] == "error" and "no longer exists" in ended["data"]["message"]


def test_streams_opened_by_token_count_against_the_owners_cap(settings, headers):
    capped = create_app(dataclasses.replace(settings, public_base_url=BASE, max_open_streams_per_user=1))
    client = capped.test_client()
    first, second = (submit(client, headers).get_json() for _ in range(2))
    held = client.get(f"{API}/jobs/{first['id']}/events", headers=headers, buffered=False)
    assert next(iter(held.response)) == b"retry: 2000\n\n"
    assert stream(client, second["urls"]["stream"]).status_code == 429
    held.close()
    opened = stream(client, second["urls"]["stream"], buffered=False)
    assert opened.status_code == 200
    opened.close()
