"""A queued job's place in its queue, with no worker running: positions, held jobs,
the ETag and long-poll, and the `queue` event on its stream."""

import threading
import time
import uuid

import pytest

from db.redis_client import get_redis
from db.repositories import jobs
from db.session import standalone
from tests.helpers import API, register, submit
from workers import job_stream, queue_position


@pytest.fixture
def headers(client):
    return register(client)[0]


def _place(client, headers, job_id):
    return client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()["queue"]


def _start(job_id: str) -> None:
    """What a worker does when it takes the job: the row, the queue's mark, the event."""
    with standalone() as connection:
        job = jobs.start(connection, job_id=uuid.UUID(job_id), lease_seconds=60, max_attempts=3)
    queue_position.started(get_redis(), job.id, queue=job.queue)
    job_stream.publish(get_redis(), job.id, job_stream.STATUS, {"status": "running", "attempt": 1})


def test_jobs_with_no_worker_have_positions_one_to_n(client, headers):
    # The free plan runs 2 at once: jobs 3 and 4 are held in Postgres, not sent yet.
    ids = [submit(client, headers).get_json()["id"] for _ in range(4)]

    places = [_place(client, headers, job_id) for job_id in ids]
    assert [place["position"] for place in places] == [1, 2, 3, 4]
    assert [place["ahead"] for place in places] == [0, 1, 2, 3]
    assert [place["eta_seconds"] for place in places] == [None] * 4  # no worker, no run time yet
    listed = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert {item["id"]: item["queue"]["position"] for item in listed} == {
        job_id: n for n, job_id in enumerate(ids, start=1)
    }


def test_places_fall_as_jobs_start_and_a_running_job_has_none(client, headers):
    ids = [submit(client, headers).get_json()["id"] for _ in range(3)]
    _start(ids[0])

    assert _place(client, headers, ids[0]) is None
    assert [_place(client, headers, job_id)["position"] for job_id in ids[1:]] == [1, 2]


def test_another_users_job_waits_behind_the_jobs_sent_before_it(client, headers):
    ids = [submit(client, headers).get_json()["id"] for _ in range(3)]  # the third is held
    other = register(client, email="other@example.com")[0]
    theirs = submit(client, other).get_json()["id"]

    assert _place(client, other, theirs)["position"] == 3  # behind the two sent, not the held one
    assert _place(client, headers, ids[2])["position"] == 4  # held: sent after everything sent now


def test_a_queued_jobs_etag_changes_when_it_moves_up(client, headers):
    first, second = (submit(client, headers).get_json()["id"] for _ in range(2))
    response = client.get(f"{API}/jobs/{second}", headers=headers)
    etag = response.headers["ETag"]
    assert client.get(f"{API}/jobs/{second}", headers={**headers, "If-None-Match": etag}).status_code == 304

    _start(first)

    moved = client.get(f"{API}/jobs/{second}", headers={**headers, "If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.get_json()["queue"]["position"] == 1 and moved.headers["ETag"] != etag


def test_a_long_poll_answers_when_the_job_moves_up(client, headers):
    first, second = (submit(client, headers).get_json()["id"] for _ in range(2))
    etag = client.get(f"{API}/jobs/{second}", headers=headers).headers["ETag"]
    threading.Timer(0.3, _start, args=[first]).start()

    response = client.get(f"{API}/jobs/{second}?wait=20", headers={**headers, "If-None-Match": etag})

    assert response.status_code == 200
    assert response.get_json()["status"] == "queued" and response.get_json()["queue"]["position"] == 1


def _events(response):
    """The stream's (type, data) events as they come, keep-alives left out."""
    import json

    for chunk in response.response:
        text = chunk.decode()
        if not text.startswith("event:") and "\nevent:" not in text:
            continue
        fields = dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)
        yield fields["event"], json.loads(fields["data"])


def test_the_stream_sends_queue_events_until_the_job_runs(client, headers):
    first, second = (submit(client, headers).get_json()["id"] for _ in range(2))
    response = client.get(f"{API}/jobs/{second}/events", headers=headers, buffered=False)
    events = _events(response)

    assert next(events) == ("queue", {"position": 2, "ahead": 1, "eta_seconds": None})
    _start(first)
    assert next(events) == ("queue", {"position": 1, "ahead": 0, "eta_seconds": None})
    _start(second)
    assert next(events)[0] == "status"
    time.sleep(1.5)  # a queue event would come within a second, were the job still queued
    with standalone() as connection:
        jobs.finish(
            connection, job_id=uuid.UUID(second), outcome=jobs.Outcome("succeeded", output={"text": "ok"})
        )
    job_stream.publish(
        get_redis(), uuid.UUID(second), job_stream.DONE, {"status": "succeeded", "error": None}
    )
    assert [event for event, _ in events] == ["done"]
    response.close()
