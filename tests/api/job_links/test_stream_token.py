"""How long a stream token lasts, and what a stream opened with one is told when it
lapses, when the account closes, or once the job is done."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from urllib.parse import parse_qs, urlsplit

from api import create_app
from api.services import stream_tokens
from db.repositories import jobs
from db.session import session_scope
from tests.api.job_links.links import BASE, NOW, parse, publish_run, stream
from tests.helpers import API, submit
from workers import job_links


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
            session,
            job_id=uuid.UUID(job["id"]),
            outcome=jobs.Outcome("succeeded", output={}),
            from_statuses=("queued",),
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
    (ended,) = [e for e in parse("".join(chunk.decode() for chunk in chunks)) if e["event"] != "queue"]
    assert ended["event"] == "error" and ended["data"]["code"] == 401
    assert "has expired" in ended["data"]["message"]


def test_a_stream_opened_by_token_ends_when_the_account_is_closed(client, headers):
    job = submit(client, headers).get_json()
    response = stream(client, job["urls"]["stream"], buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    (ended,) = [e for e in parse("".join(chunk.decode() for chunk in chunks)) if e["event"] != "queue"]
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
