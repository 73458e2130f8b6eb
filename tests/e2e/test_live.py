"""Following a running job: server-sent events in order, resume, long-poll."""

import json
import time

import pytest

from tests.helpers import API, register, submit, wait_for

pytestmark = pytest.mark.e2e

WORDS = " ".join(f"w{n}" for n in range(30))


@pytest.fixture
def headers(client, celery_worker):
    return register(client)[0]


def read_events(response, limit: int = 10_000) -> list[dict]:
    """Parse an SSE body into [{id, event, data}], stopping when the server closes it."""
    events, buffer = [], ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith((":", "retry:")):
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            events.append(
                {"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])}
            )
            if len(events) >= limit:
                return events
    return events


def test_events_arrive_in_order_and_end_with_done(client, headers):
    job_id = submit(client, headers, input={"prompt": f"[[slow:0.02]] {WORDS}"}).get_json()["id"]
    response = client.get(f"{API}/jobs/{job_id}/events", headers=headers, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = read_events(response)

    assert events[0]["event"] == "status" and events[0]["data"] == {"status": "running", "attempt": 1}
    assert events[-1] == {
        "id": events[-1]["id"],
        "event": "done",
        "data": {"status": "succeeded", "error": None},
    }
    text = "".join(event["data"]["text"] for event in events if event["event"] == "delta")
    job = wait_for(client, headers, job_id)
    assert text == job["output"]["text"]
    ids = [tuple(map(int, event["id"].split("-"))) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_stream_resumes_after_last_event_id(client, headers):
    job_id = submit(client, headers, input={"prompt": f"[[slow:0.02]] {WORDS}"}).get_json()["id"]
    wait_for(client, headers, job_id)
    everything = read_events(client.get(f"{API}/jobs/{job_id}/events", headers=headers, buffered=False))

    resume_from = everything[4]["id"]
    rest = read_events(
        client.get(
            f"{API}/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": resume_from}, buffered=False
        )
    )
    assert rest == everything[5:]


def test_long_poll_returns_as_soon_as_the_job_changes(client, headers):
    job_id = submit(client, headers, input={"prompt": f"[[slow:0.05]] {WORDS}"}).get_json()["id"]
    first = client.get(f"{API}/jobs/{job_id}", headers=headers)

    started = time.monotonic()
    changed = client.get(
        f"{API}/jobs/{job_id}?wait=20", headers={**headers, "If-None-Match": first.headers["ETag"]}
    )
    assert time.monotonic() - started < 10
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]

    finished = client.get(f"{API}/jobs/{job_id}?wait=20", headers=headers)
    while finished.get_json()["status"] not in ("succeeded", "failed"):
        finished = client.get(
            f"{API}/jobs/{job_id}?wait=20", headers={**headers, "If-None-Match": finished.headers["ETag"]}
        )
    assert finished.get_json()["status"] == "succeeded"
