"""A job's stream URL through the real web (gunicorn gevent, as `make run`): opened
as a page on another origin's EventSource opens it, with no header, and resumed with
Last-Event-ID after the connection drops mid-stream."""

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.helpers import call, poll, register_and_submit

pytestmark = pytest.mark.e2e

PAGE = "http://page.example.test:5173"
WORDS = " ".join(f"w{n}" for n in range(40))


def open_stream(url: str, last_event_id: str | None = None) -> tuple[http.client.HTTPConnection, object]:
    """GET the URL as an EventSource does: no Authorization, an Origin, Accept."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    headers = {"Origin": PAGE, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    connection.request("GET", f"{parts.path}?{parts.query}", headers=headers)
    return connection, connection.getresponse()


def events_of(response, *, until: int | None = None) -> list[dict]:
    """Events off the wire ({id, event, data}) until `done`, the end, or `until` events."""
    found, block = [], []
    while until is None or len(found) < until:
        line = response.readline().decode()
        if not line:
            break
        if line != "\n":
            block.append(line.rstrip("\n"))
            continue
        fields = dict(entry.split(": ", 1) for entry in block if not entry.startswith((":", "retry:")))
        block = []
        if fields:
            found.append(
                {"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])}
            )
            if fields["event"] == "done":
                break
    return found


def test_a_page_on_another_origin_follows_a_job_on_its_stream_url(start_stack):
    base = start_stack(CORS_ORIGINS=PAGE)
    token, job = register_and_submit(base, f"[[slow:0.03]] {WORDS}")
    assert job["urls"]["get"] == f"{base}/jobs/{job['id']}"
    assert token not in job["urls"]["stream"]

    connection, response = open_stream(job["urls"]["stream"])
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/event-stream")
    assert response.getheader("Access-Control-Allow-Origin") == PAGE
    seen = events_of(response, until=4)
    connection.close()  # the server drops it mid-stream; EventSource reconnects by itself

    connection, response = open_stream(job["urls"]["stream"], last_event_id=seen[-1]["id"])
    assert response.status == 200
    rest = events_of(response)
    connection.close()

    streamed = seen + rest
    assert streamed[-1]["event"] == "done" and streamed[-1]["data"]["status"] == "succeeded"
    assert len({event["id"] for event in streamed}) == len(streamed)  # nothing repeated
    finished = poll(base, token, job)
    text = "".join(event["data"]["text"] for event in streamed if event["event"] == "delta")
    assert text == finished["output"]["text"]  # nothing lost

    other = call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": "another"}}, token)[2]
    stolen = job["urls"]["stream"].replace(job["id"], other["id"])
    connection, response = open_stream(stolen)
    assert response.status == 401
    assert "not valid for this job" in json.loads(response.read())["message"]
    connection.close()
