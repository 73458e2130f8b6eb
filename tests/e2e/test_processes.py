"""The Procfile's own processes (gunicorn, prefork Celery workers) started by honcho,
as `make run` starts them, and the README walk-through over real HTTP."""

import pytest

from tests.fakes.services import wait_until
from tests.helpers import call, poll, register_and_submit

pytestmark = pytest.mark.e2e


def test_make_run_processes_serve_the_walkthrough(start_stack):
    base = start_stack()
    token, job = register_and_submit(base, "Over HTTP")
    job = poll(base, token, job)
    assert job["status"] == "succeeded" and job["output"] == {"text": "Echo: Over HTTP"}
    # Ready once both workers' heartbeats are in: every queue has a consumer.
    wait_until(lambda: call("GET", f"{base}/ready")[0] == 200, 15, message="ready")
    assert call("GET", f"{base}/ready")[2]["checks"] == {"database": "ok", "redis": "ok", "workers": "ok"}


def test_the_soft_time_limit_ends_a_hung_provider_call_as_timeout(start_stack):
    base = start_stack(JOB_SOFT_TIME_LIMIT="1", JOB_HARD_TIME_LIMIT="5", OPENAI_TIMEOUT="30")
    token, job = register_and_submit(base, "Hang forever [[hang]]")
    job = poll(base, token, job, timeout=15)
    assert job["status"] == "failed"
    assert job["error"] == {"code": "timeout", "message": "The job ran longer than its 1 s limit."}


def test_open_event_streams_do_not_tie_up_the_web_worker(start_stack):
    """One gevent web worker holds many idle SSE clients and still answers others."""
    import http.client
    from urllib.parse import urlsplit

    base = start_stack(
        processes=("web",), WEB_CONCURRENCY="1", SSE_HEARTBEAT_SECONDS="1", MAX_OPEN_STREAMS_PER_USER="40"
    )
    token, job = register_and_submit(base, "never runs: no worker is started")
    url = urlsplit(base)
    streams = []
    for _ in range(40):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        connection.request(
            "GET", f"/api/v1/jobs/{job['id']}/events", headers={"Authorization": f"Bearer {token}"}
        )
        response = connection.getresponse()
        assert response.status == 200
        streams.append((connection, response))

    status, _, me = call("GET", f"{base}/users/me", token=token)
    assert status == 200 and me["email"] == "walk@example.com"
    for _, response in streams[:5]:  # the streams are alive: each gets its keep-alive
        assert response.readline() == b"retry: 2000\n"
        assert response.readline() == b"\n"
        # The queued job's place in the queue (an `event: queue` block) may come first.
        line = response.readline()
        if line == b"event: queue\n":
            assert response.readline().startswith(b"data: ") and response.readline() == b"\n"
            line = response.readline()
        assert line == b": keep-alive\n"

    for connection, _ in streams:
        connection.close()
