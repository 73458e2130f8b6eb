"""Submit → a real Celery worker → the local OpenAI server (real SDK) → poll."""

import time

import pytest

from tests.fakes.services import wait_until
from tests.helpers import API, register, submit, wait_for
from workers.tools import get_tool

pytestmark = pytest.mark.e2e


@pytest.fixture
def headers(client, celery_worker):
    return register(client)[0]


def test_walkthrough_register_submit_poll_result(client, headers, fake_openai):
    tools = client.get(f"{API}/tools").get_json()["items"]
    assert "text" in [tool["name"] for tool in tools]

    response = submit(client, headers, input={"prompt": "Name three queues."})
    assert response.status_code == 202
    job = wait_for(client, headers, response.get_json()["id"])

    assert job["status"] == "succeeded", job
    assert job["output"] == {"text": "Echo: Name three queues."}
    assert job["error"] is None and job["progress"] == 100 and job["attempt"] == 1
    usage = job["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    # gpt-4o-mini: $0.15 in and $0.60 out per million tokens, rounded up to a micro-dollar.
    expected = -(-(usage["input_tokens"] * 150_000 + usage["output_tokens"] * 600_000) // 1_000_000)
    assert usage["cost_micros"] == expected
    assert job["started_at"] and job["finished_at"] >= job["started_at"]

    sent = fake_openai.requests[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["stream"] is True
    assert sent["messages"][0]["role"] == "system" and "Ada" in sent["messages"][0]["content"]


def test_a_json_tool_returns_output_that_matches_its_schema(client, headers):
    response = submit(
        client,
        headers,
        tool="roadmap",
        input={"goal": "Move from teaching into UX research", "timeline": "90_days"},
    )
    job = wait_for(client, headers, response.get_json()["id"])
    assert job["status"] == "succeeded", job
    assert get_tool("roadmap").output_errors(job["output"]) == {}
    assert job["output"]["phases"]


def test_invalid_json_gets_one_repair_attempt(client, headers, fake_openai):
    response = submit(
        client,
        headers,
        tool="roadmap",
        input={"goal": "Open a bakery [[invalid-json:1]]", "timeline": "1_year"},
    )
    job = wait_for(client, headers, response.get_json()["id"])
    assert job["status"] == "succeeded", job
    assert len(fake_openai.requests) == 2
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "not valid" in repair[-1]["content"]


def test_json_still_invalid_after_the_repair_fails_invalid_output(client, headers, fake_openai):
    response = submit(
        client,
        headers,
        tool="roadmap",
        input={"goal": "Open a bakery [[invalid-json]]", "timeline": "1_year"},
    )
    job = wait_for(client, headers, response.get_json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_output"
    assert "repair" in job["error"]["message"]
    assert len(fake_openai.requests) == 2
    assert job["usage"]["input_tokens"] > 0  # both calls are counted


@pytest.mark.parametrize(
    ("marker", "code", "requests"),
    [
        ("[[fail:400]]", "invalid_request", 1),
        ("[[fail:401]]", "provider_error", 1),
        ("[[fail:quota]]", "provider_error", 1),
        ("[[fail:content_filter]]", "content_filtered", 1),
        ("[[fail:429]]", "rate_limited", 3),
        ("[[fail:503]]", "provider_error", 3),
        ("[[malformed]]", "provider_error", 3),
    ],
)
def test_provider_failures_end_failed_with_a_useful_code(
    client, headers, fake_openai, marker, code, requests
):
    response = submit(client, headers, input={"prompt": f"Hello {marker}"})
    job = wait_for(client, headers, response.get_json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == code
    assert job["error"]["message"] and "test-key" not in job["error"]["message"]
    assert len(fake_openai.requests) == requests  # transient errors retried, the rest not
    assert job["finished_at"]


def test_transient_failures_are_retried_to_success(client, headers, fake_openai):
    response = submit(client, headers, input={"prompt": "Hello [[fail:500:2]]"})
    job = wait_for(client, headers, response.get_json()["id"])
    assert job["status"] == "succeeded"
    assert len(fake_openai.requests) == 3
    assert job["attempt"] == 1  # provider retries are not job attempts


def test_cancel_stops_a_streaming_job_and_keeps_its_partial_output(client, headers, fake_openai):
    words = " ".join(f"w{n}" for n in range(200))
    response = submit(client, headers, input={"prompt": f"[[slow:0.05]] {words}"})
    job_id = response.get_json()["id"]
    wait_for(client, headers, job_id, statuses=("running",))
    time.sleep(0.5)

    canceled_at = time.monotonic()
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).status_code == 202
    job = wait_for(client, headers, job_id)
    stopped_within = time.monotonic() - canceled_at

    assert job["status"] == "canceled", job
    assert job["error"]["code"] == "canceled"
    assert job["output"]["text"].startswith("Echo: [[slow:0.05]]")
    assert len(job["output"]["text"]) < len(f"Echo: [[slow:0.05]] {words}")
    assert job["usage"]["output_tokens"] > 0  # charged for what was generated
    assert stopped_within < 5


def test_cancel_stops_a_job_still_waiting_for_the_provider(client, headers, fake_openai):
    response = submit(client, headers, input={"prompt": "[[hang]] Take your time"})
    job_id = response.get_json()["id"]
    wait_for(client, headers, job_id, statuses=("running",))
    wait_until(lambda: fake_openai.requests, 10, message="the provider call")

    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).status_code == 202
    job = wait_for(client, headers, job_id)

    # Not `failed` with a timeout, after OPENAI_TIMEOUT and two retries.
    assert job["status"] == "canceled", job
    assert job["error"]["code"] == "canceled" and job["output"] is None
    assert len(fake_openai.requests) == 1


def test_a_job_not_started_before_its_deadline_expires(client, headers):
    import uuid

    from sqlalchemy import update

    from db.models import Job
    from db.session import session_scope

    job_id = submit(client, headers).get_json()["id"]  # the worker may already be on it
    response = submit(client, headers, input={"prompt": "late"})
    late_id = response.get_json()["id"]
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(late_id), Job.status == "queued")
            .values(expires_at=Job.created_at)
        )
    wait_for(client, headers, job_id)
    late = wait_for(client, headers, late_id)
    if late["status"] != "succeeded":  # the worker took it before the deadline was moved
        assert late["status"] == "expired"
        assert late["error"]["code"] == "expired" and late["started_at"] is None


def test_a_job_whose_message_was_lost_is_resent_by_the_beat_task(client, headers, settings):
    import datetime as dt
    import uuid

    from db.repositories import jobs, users
    from db.session import session_scope
    from tasks.job_recovery import resend_queued

    me = client.get(f"{API}/users/me", headers=headers).get_json()
    with session_scope() as session:
        user = users.get(session, user_id=uuid.UUID(me["id"]))
        job = jobs.create(
            session,
            user_id=user.id,
            tool="text",
            input={"prompt": "never sent"},
            model="gpt-4o-mini",
            queue="ai",
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        job_id = str(job.id)

    assert resend_queued() == 1
    assert resend_queued() == 0  # sent once; not again while it waits
    done = wait_for(client, headers, job_id)
    assert done["status"] == "succeeded" and done["output"] == {"text": "Echo: never sent"}


def test_a_429_storm_is_ridden_out_by_every_job(client, headers, fake_openai):
    """Twenty jobs whose provider rate-limits each of them twice all succeed, each
    with exactly three provider calls and one recorded usage."""
    ids = [
        submit(client, headers, input={"prompt": f"storm {n} [[fail:429:2]]"}).get_json()["id"]
        for n in range(20)
    ]
    finished = [wait_for(client, headers, job_id, timeout=60) for job_id in ids]
    assert [job["status"] for job in finished] == ["succeeded"] * 20
    for n, job in enumerate(finished):
        calls = [
            r for r in fake_openai.requests if r["messages"][-1]["content"] == f"storm {n} [[fail:429:2]]"
        ]
        assert len(calls) == 3 and job["attempt"] == 1
        assert job["output"]["text"] == f"Echo: storm {n} [[fail:429:2]]"
