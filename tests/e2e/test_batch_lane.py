"""The batch lane through HTTP, a real Celery worker, the beat's tick (called as the
beat would run it) and the fake OpenAI server's Files and Batches endpoints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import select

from db.models import ProviderBatch, UsageLedger
from db.session import session_scope
from tasks import batch_lane as batch_lane_task
from tasks.generation import dispatch
from tests.helpers import API, call, mark_verified, poll, register, submit, wait_for
from workers.batch_lane import tick
from workers.catalogue import DEFAULT_FILE, load

pytestmark = pytest.mark.e2e

CATALOGUE = load(str(DEFAULT_FILE))  # the shipped one: gpt-4o-mini has batch prices


@pytest.fixture
def headers(client, celery_worker):
    return register(client)[0]


@pytest.fixture
def held(fake_openai):
    """Batches stay in progress until the test lets them finish."""
    fake_openai.batches.finish_after = None
    return fake_openai.batches


def in_hours(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


def submit_held(client, headers, prompt: str, **extra) -> dict:
    response = submit(client, headers, input={"prompt": prompt}, **extra)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert (job["status"], job["lane"]) == ("scheduled", "batch"), job
    return job


def chat_calls(fake_openai, prompt: str) -> int:
    return sum(prompt in str(request["messages"]) for request in fake_openai.requests)


def ledger(job_id: str) -> list[tuple[int, str, bool, int]]:
    with session_scope() as session:
        rows = session.scalars(select(UsageLedger).where(UsageLedger.job_id == uuid.UUID(job_id))).all()
        return sorted((row.attempt, row.lane, row.billed, row.cost_micros) for row in rows)


def standard_cost(usage: dict) -> int:
    return CATALOGUE.cost_micros("gpt-4o-mini", usage["input_tokens"], usage["output_tokens"])


def batch_cost(usage: dict) -> int:
    return CATALOGUE.cost_micros("gpt-4o-mini", usage["input_tokens"], usage["output_tokens"], lane="batch")


def test_held_jobs_finish_through_one_batch_charged_once_at_batch_prices(
    client, headers, fake_openai, held, receiver
):
    tag = uuid.uuid4().hex[:6]
    prompts = [f"Summarise chapter {n} {tag}" for n in range(3)]
    jobs = [submit_held(client, headers, prompts[0], deadline=in_hours(3), webhook_url=receiver.url())]
    jobs += [submit_held(client, headers, prompt, lane="batch") for prompt in prompts[1:]]

    assert batch_lane_task.run_tick() == 0
    [batch] = held.created()
    assert [file.purpose for file in held.files.values()] == ["batch"]  # one upload
    for job in jobs:  # sent, not answered yet: still held
        assert client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()["status"] == "scheduled"

    held.finish(batch["id"])
    assert batch_lane_task.run_tick() == 3
    assert batch_lane_task.run_tick() == 0  # nothing more to send or record
    assert len(held.created()) == 1

    saved = 0
    for job, prompt in zip(jobs, prompts, strict=True):
        done = wait_for(client, headers, job["id"])
        assert done["status"] == "succeeded" and done["output"] == {"text": f"Echo: {prompt}"}
        usage = done["usage"]
        assert usage["lane"] == "batch" and usage["input_tokens"] > 0
        assert usage["cost_micros"] == batch_cost(usage) < standard_cost(usage)
        assert ledger(job["id"]) == [(0, "batch", True, usage["cost_micros"])]
        assert chat_calls(fake_openai, prompt) == 0  # no call on the normal lane
        saved += standard_cost(usage) - usage["cost_micros"]
    # What the lane saved, against the catalogue's standard prices.
    by_lane = client.get(f"{API}/usage?group_by=lane", headers=headers).get_json()["items"]
    [batch_row] = [item for item in by_lane if item["key"] == "batch"]
    assert batch_row["saved_micros"] == saved > 0 and batch_row["jobs"] == 3
    # Each line is the normal lane's request, not streamed.
    body = held.lines[0]
    assert body["model"] == "gpt-4o-mini" and "stream" not in body and body["max_tokens"] > 0
    assert body["messages"][0]["role"] == "system" and "Ada" in body["messages"][0]["content"]
    [request] = receiver.wait_for(1)  # the webhook, as for any finished job
    assert json.loads(request.body)["type"] == "job.succeeded"
    with session_scope() as session:
        assert session.get(ProviderBatch, batch["id"]).state == "closed"


def test_a_job_whose_deadline_nears_runs_on_the_normal_lane_and_its_late_answer_is_ignored(
    client, headers, fake_openai, held, settings
):
    tag = uuid.uuid4().hex[:6]
    near, far = f"Needed soon {tag}", f"Needed later {tag}"
    soon = submit_held(client, headers, near, deadline=in_hours(1.02))
    later = submit_held(client, headers, far, deadline=in_hours(5))
    tick.run(settings, dispatch)
    [batch] = held.created()

    # Time passes: the first job's deadline is now within the take-out margin.
    tick.run(dataclasses.replace(settings, batch_lane_takeout=3900), dispatch)
    ran = wait_for(client, headers, soon["id"])
    assert ran["status"] == "succeeded" and ran["attempt"] == 1 and ran["usage"]["lane"] == "standard"
    assert chat_calls(fake_openai, near) == 1
    charged = ran["usage"]["cost_micros"]
    assert charged == standard_cost(ran["usage"])

    held.finish(batch["id"])  # the batch answers for both, late for the first
    tick.run(settings, dispatch)
    assert wait_for(client, headers, later["id"])["usage"]["lane"] == "batch"
    again = client.get(f"{API}/jobs/{soon['id']}", headers=headers).get_json()
    assert again["usage"] == ran["usage"] and again["finished_at"] == ran["finished_at"]
    # Billed once, on the lane that answered; the late batch call is on the books, unbilled.
    rows = ledger(soon["id"])
    assert [(attempt, lane, billed) for attempt, lane, billed, _ in rows] == [
        (0, "batch", False),
        (1, "standard", True),
    ]
    assert sum(cost for *_, billed, cost in rows if billed) == charged
    usage = client.get(f"{API}/usage", headers=headers).get_json()
    assert usage["quota"]["reserved"] == 0


def test_a_line_the_provider_refused_fails_that_job_only(client, headers, fake_openai, held, settings):
    tag = uuid.uuid4().hex[:6]
    good = submit_held(client, headers, f"Fine {tag}", lane="batch")
    bad = submit_held(client, headers, f"Broken [[fail:400]] {tag}", lane="batch")
    lost = submit_held(client, headers, f"Lost in the batch {tag}", lane="batch")
    held.failing_ids = {lost["id"]}  # the provider could not run this line
    tick.run(settings, dispatch)
    held.finish()
    tick.run(settings, dispatch)

    assert wait_for(client, headers, good["id"])["status"] == "succeeded"
    failed = wait_for(client, headers, bad["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_request" and "HTTP 400" in failed["error"]["message"]
    assert ledger(bad["id"]) == []  # no answer, nothing charged
    rerun = wait_for(client, headers, lost["id"])  # not the job's fault: the normal lane runs it
    assert rerun["status"] == "succeeded" and rerun["usage"]["lane"] == "standard"
    assert chat_calls(fake_openai, f"Lost in the batch {tag}") == 1


def test_cancel_a_held_and_a_batched_job(client, headers, fake_openai, held, settings):
    tag = uuid.uuid4().hex[:6]
    unsent = submit_held(client, headers, f"Never sent {tag}", lane="batch")
    response = client.post(f"{API}/jobs/{unsent['id']}/cancel", headers=headers)
    assert response.status_code == 202 and response.get_json()["status"] == "canceled"
    tick.run(settings, dispatch)
    assert held.created() == []  # nothing left to send

    first = submit_held(client, headers, f"First {tag}", lane="batch")
    second = submit_held(client, headers, f"Second {tag}", lane="batch")
    tick.run(settings, dispatch)
    [batch] = held.created()
    assert client.post(f"{API}/jobs/{first['id']}/cancel", headers=headers).get_json()["status"] == "canceled"
    tick.run(settings, dispatch)
    assert held.created()[0]["status"] == "in_progress"  # the second job still waits for it

    assert (
        client.post(f"{API}/jobs/{second['id']}/cancel", headers=headers).get_json()["status"] == "canceled"
    )
    tick.run(settings, dispatch)  # no job waits for the batch any more: it is canceled
    assert held.created()[0]["status"] == "cancelling"
    with session_scope() as session:
        assert session.get(ProviderBatch, batch["id"]).state == "closed"
    for job in (unsent, first, second):
        shown = client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()
        assert shown["status"] == "canceled" and shown["usage"]["cost_micros"] == 0
    assert client.get(f"{API}/usage", headers=headers).get_json()["quota"]["reserved"] == 0


def test_the_procfiles_beat_and_worker_run_the_batch_lane(start_stack, fake_openai):
    """The processes `make run` starts: the beat's tick reaches the default worker,
    which gathers, follows and records the job with no test calling the tick."""
    base = start_stack(processes=("web", "worker", "beat"), BATCH_LANE_INTERVAL="1")
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    status, _, session = call(
        "POST", f"{base}/auth/register", {"email": email, "password": "a long password", "name": "Lane"}
    )
    assert status == 201, session
    mark_verified(session["user"]["id"], email)
    token = session["access_token"]
    prompt = f"Through the beat {uuid.uuid4().hex[:6]}"
    status, _, job = call(
        "POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": prompt}, "lane": "batch"}, token
    )
    assert status == 202 and job["status"] == "scheduled", job

    done = poll(base, token, job, timeout=60)
    assert done["status"] == "succeeded" and done["output"] == {"text": f"Echo: {prompt}"}
    assert done["usage"]["lane"] == "batch" and done["usage"]["cost_micros"] == batch_cost(done["usage"])
    assert len(fake_openai.batches.created()) == 1 and chat_calls(fake_openai, prompt) == 0
