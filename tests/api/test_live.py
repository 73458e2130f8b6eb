"""Live endpoints with no worker running: keep-alives, ends without events, bad input."""

import threading
import time
import uuid

import pytest
from sqlalchemy import text

from api.services import live
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import get_engine, session_scope
from tests.helpers import API, register, submit
from workers import job_stream


@pytest.fixture
def headers(client):
    return register(client)[0]


def test_an_idle_stream_sends_keepalives(app, headers, settings):
    import dataclasses

    from api import create_app

    quick = create_app(dataclasses.replace(settings, sse_keepalive_seconds=0.1)).test_client()
    job_id = submit(quick, headers).get_json()["id"]
    response = quick.get(f"{API}/jobs/{job_id}/events", headers=headers, buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"
    assert next(chunks).startswith(b"event: queue\n")  # its place, once: it does not move
    assert next(chunks) == b": keep-alive\n\n"
    response.close()


def test_a_job_that_ended_without_an_event_still_ends_the_stream(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    with session_scope() as session:
        jobs.finish(
            session,
            job_id=uuid.UUID(job_id),
            outcome=jobs.Outcome("failed", error_code="worker_lost", error_message="gone"),
            from_statuses=("queued",),
        )
    body = client.get(f"{API}/jobs/{job_id}/events", headers=headers).get_data(as_text=True)
    assert (
        body
        == 'retry: 2000\n\nevent: done\ndata: {"status":"failed","error":{"code":"worker_lost","message":"gone"}}\n\n'
    )


def test_a_stream_whose_database_goes_away_ends_cleanly_for_the_client_to_resume(
    client, headers, monkeypatch, caplog
):
    # Found by the soak (soak/): a Postgres restart under an open stream raised out of the
    # body, and gunicorn cut the response off mid-chunk.
    from sqlalchemy.exc import OperationalError

    job_id = submit(client, headers).get_json()["id"]
    response = client.get(f"{API}/jobs/{job_id}/events", headers=headers, buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"retry: 2000\n\n"
    assert next(chunks).startswith(b"event: queue\n")

    def database_down():
        raise OperationalError("SELECT 1", {}, Exception("the database system is shutting down"))

    monkeypatch.setattr(live, "session_scope", database_down)
    assert list(chunks) == []  # the body ends, no exception: the client reconnects after `retry:`
    assert f"job_id={job_id} event stream ended: OperationalError unavailable" in caplog.text
    response.close()


def test_cancel_of_a_queued_job_is_an_event(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    body = client.get(f"{API}/jobs/{job_id}/events", headers=headers).get_data(as_text=True)
    assert body.startswith("retry: 2000\n\nid: ") and '"status":"canceled"' in body


def test_long_poll_of_an_unchanged_job_answers_304_after_the_wait(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    etag = client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    started = time.monotonic()
    response = client.get(f"{API}/jobs/{job_id}?wait=1", headers={**headers, "If-None-Match": etag})
    assert response.status_code == 304
    assert time.monotonic() - started >= 0.9


def test_a_long_poll_holds_no_transaction_open_while_it_waits(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    etag = client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    waiting = threading.Thread(
        target=client.get,
        args=(f"{API}/jobs/{job_id}?wait=2",),
        kwargs={"headers": {**headers, "If-None-Match": etag}},
    )
    waiting.start()
    time.sleep(1)  # the poll has read the row and waits for an event
    with get_engine().connect() as connection:
        states = (
            connection.execute(
                text(
                    "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            .scalars()
            .all()
        )
    waiting.join()
    # Vacuum and DDL are not held up by it (it holds no connection at all while it waits:
    # see the next test).
    assert "idle in transaction" not in states


@pytest.mark.parametrize("credential", ["access token", "API key"])
def test_long_polls_hold_no_database_connection_while_they_wait(client, headers, credential):
    # A pool's worth of clients long-polling must not leave the other requests waiting
    # for a connection. An API key is checked in the database, in the request's session.
    if credential == "API key":
        key = client.post(f"{API}/api-keys", headers=headers, json={"name": "poller"}).get_json()["key"]
        headers = {"X-API-Key": key}
    job_id = submit(client, headers).get_json()["id"]
    etag = client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    pool = get_engine().pool
    before = pool.checkedout()
    answers = []
    waiting = [
        threading.Thread(
            target=lambda: answers.append(
                client.get(f"{API}/jobs/{job_id}?wait=2", headers={**headers, "If-None-Match": etag})
            )
        )
        for _ in range(3)
    ]
    for thread in waiting:
        thread.start()
    time.sleep(1)  # each has read the row and waits for an event
    held = pool.checkedout() - before
    for thread in waiting:
        thread.join()
    assert held == 0
    assert [answer.status_code for answer in answers] == [304, 304, 304]


def test_an_open_event_stream_holds_no_database_connection(client, headers):
    # The request's session ends when the view returns its stream; the stream's own
    # looks at the job borrow a connection each.
    key = client.post(f"{API}/api-keys", headers=headers, json={"name": "watcher"}).get_json()["key"]
    job_id = submit(client, {"X-API-Key": key}).get_json()["id"]  # its first use records it, and commits
    pool = get_engine().pool
    before = pool.checkedout()
    response = client.get(f"{API}/jobs/{job_id}/events", headers={"X-API-Key": key}, buffered=False)
    assert next(iter(response.response)) == b"retry: 2000\n\n"  # the stream is open
    held = pool.checkedout() - before
    response.close()
    assert held == 0


def test_long_poll_with_a_stale_etag_answers_at_once(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    started = time.monotonic()
    response = client.get(f"{API}/jobs/{job_id}?wait=30", headers={**headers, "If-None-Match": '"stale"'})
    assert response.status_code == 200 and time.monotonic() - started < 5


def _run(job_id: str) -> None:
    """As a worker takes a job: the row, then its event."""
    with session_scope() as session:
        assert jobs.start(session, job_id=uuid.UUID(job_id), lease_seconds=60, max_attempts=3) is not None
    job_stream.publish(get_redis(), uuid.UUID(job_id), job_stream.STATUS, {"status": "running", "attempt": 1})


def _succeed(job_id: str, *, event: bool = True) -> None:
    with session_scope() as session:
        assert jobs.finish(
            session, job_id=uuid.UUID(job_id), outcome=jobs.Outcome("succeeded", output={"text": "Queues."})
        )
    if event:
        job_stream.publish(
            get_redis(), uuid.UUID(job_id), job_stream.DONE, {"status": "succeeded", "error": None}
        )


def _long_poll(client, url: str, headers: dict) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(
        target=lambda: answers.append((client.get(url, headers=headers), time.monotonic()))
    )
    thread.start()
    time.sleep(0.5)  # it has read the row and waits for an event
    return thread, answers


def test_long_poll_until_finished_answers_with_the_result_not_at_the_start(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    waiting, answers = _long_poll(client, f"{API}/jobs/{job_id}?wait=20&until=finished", headers)
    _run(job_id)
    job_stream.publish(get_redis(), uuid.UUID(job_id), job_stream.DELTA, {"text": "Queues."})
    time.sleep(live.ROW_CHECK_SECONDS + 0.5)  # past a look at the row, too
    assert answers == []  # running, and streaming text: not finished
    _succeed(job_id)
    finished_at = time.monotonic()
    waiting.join(timeout=10)
    ((response, answered_at),) = answers
    assert response.status_code == 200
    assert response.get_json()["status"] == "succeeded"
    assert response.get_json()["output"] == {"text": "Queues."}
    assert answered_at - finished_at < 1  # woken by the done event, not a later look at the row


def test_long_poll_by_default_answers_at_the_first_change(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    waiting, answers = _long_poll(client, f"{API}/jobs/{job_id}?wait=20", headers)
    _run(job_id)
    waiting.join(timeout=10)
    assert [response.get_json()["status"] for response, _ in answers] == ["running"]


def test_a_long_poll_of_a_job_streaming_text_does_not_read_its_row_for_each_piece(
    client, headers, monkeypatch
):
    """Streamed text is not in the row until the job ends: a long-poll waiting for the
    next change reads the row every couple of seconds, not for each `delta` event (a
    job streaming sends several a second), and still answers at once when it ends."""
    job_id = submit(client, headers).get_json()["id"]
    _run(job_id)
    reads, real_read = [], live._read
    monkeypatch.setattr(live, "_read", lambda *args: reads.append(time.monotonic()) or real_read(*args))
    waiting, answers = _long_poll(client, f"{API}/jobs/{job_id}?wait=20", headers)
    started = time.monotonic()
    for _ in range(10):  # text every 0.1 s for a second
        job_stream.publish(get_redis(), uuid.UUID(job_id), job_stream.DELTA, {"text": "…"})
        time.sleep(0.1)
    assert answers == [] and len(reads) == 1  # the first look only
    _succeed(job_id)
    finished_at = time.monotonic()
    waiting.join(timeout=10)
    ((response, answered_at),) = answers
    assert response.get_json()["status"] == "succeeded" and answered_at - finished_at < 1
    assert len(reads) == 2 and reads[1] - started < live.ROW_CHECK_SECONDS + 1


def test_long_poll_until_finished_sees_an_end_whose_event_was_lost(client, headers):
    # Events are a hint: while they keep coming (text streaming) or after they stop, the
    # row is still read every couple of seconds.
    job_id = submit(client, headers).get_json()["id"]
    _run(job_id)
    waiting, answers = _long_poll(client, f"{API}/jobs/{job_id}?wait=20&until=finished", headers)
    _succeed(job_id, event=False)
    finished_at = time.monotonic()
    for _ in range(8):  # text still arriving every 0.4 s, then done never sent
        job_stream.publish(get_redis(), uuid.UUID(job_id), job_stream.DELTA, {"text": "…"})
        time.sleep(0.4)
    waiting.join(timeout=10)
    ((response, answered_at),) = answers
    assert response.get_json()["status"] == "succeeded"
    assert answered_at - finished_at < live.ROW_CHECK_SECONDS + 1


def test_long_poll_until_finished_of_a_finished_job_answers_at_once(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    _run(job_id)
    _succeed(job_id)
    started = time.monotonic()
    response = client.get(f"{API}/jobs/{job_id}?wait=20&until=finished", headers=headers)
    assert response.get_json()["status"] == "succeeded" and time.monotonic() - started < 2


def test_long_poll_until_finished_ends_with_the_job_as_it_is_when_the_wait_is_over(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    etag = client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    unchanged = client.get(
        f"{API}/jobs/{job_id}?wait=1&until=finished", headers={**headers, "If-None-Match": etag}
    )
    assert unchanged.status_code == 304
    waiting, answers = _long_poll(
        client, f"{API}/jobs/{job_id}?wait=2&until=finished", {**headers, "If-None-Match": etag}
    )
    _run(job_id)
    waiting.join(timeout=10)
    ((response, _),) = answers
    assert response.status_code == 200 and response.get_json()["status"] == "running"


def test_bad_wait_and_event_ids_are_422(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    assert client.get(f"{API}/jobs/{job_id}?wait=31", headers=headers).status_code == 422
    assert client.get(f"{API}/jobs/{job_id}?wait=soon", headers=headers).status_code == 422
    until = client.get(f"{API}/jobs/{job_id}?wait=5&until=done", headers=headers)
    assert until.status_code == 422
    assert until.get_json()["errors"]["query"]["until"] == ["until is `change` or `finished`."]
    bad = client.get(f"{API}/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": "x; drop"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.get_json()["errors"]["headers"]


def test_another_users_events_are_404(client, headers):
    job_id = submit(client, headers).get_json()["id"]
    stranger, _ = register(client)
    assert client.get(f"{API}/jobs/{job_id}/events", headers=stranger).status_code == 404
    assert client.get(f"{API}/jobs/{job_id}?wait=1", headers=stranger).status_code == 404


def test_a_long_poll_compares_the_etag_that_get_sends(app, client, headers):
    # The long-poll computes the ETag itself (api.resources.jobs.etag_of); were it to differ
    # from what flask-smorest sends, every long-poll would answer at once.
    from api.resources.jobs import etag_of
    from api.services import jobs as job_service
    from db.session import standalone

    job_id = uuid.UUID(submit(client, headers).get_json()["id"])
    user_id = uuid.UUID(client.get(f"{API}/users/me", headers=headers).get_json()["id"])
    sent = client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    with app.test_request_context(), standalone() as connection:
        job = job_service.read(connection, user_id=user_id, job_id=job_id)
        assert f'"{etag_of(job)}"' == sent
