"""Reading a job's `urls` in tests: the base they are on, the stream they open, and the
events a worker would publish to it."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

from db.redis_client import get_redis
from tests.helpers import API
from workers import job_stream

BASE = "https://conveyor.example.test/behind-a-proxy"
ORIGIN = "https://app.example.test"
NOW = 1_899_999_900.0  # a fixed clock, at the start of a step (half the default grace)


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
    job_stream.publish(redis, job, job_stream.STATUS, {"status": "running", "attempt": 1})
    for text in texts:
        job_stream.publish(redis, job, job_stream.DELTA, {"text": text})
    job_stream.publish(redis, job, job_stream.DONE, {"status": "succeeded", "error": None})


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
