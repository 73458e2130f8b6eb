"""A deploy stops workers with SIGTERM, as `docker stop` and Kubernetes do: the job a
worker is streaming finishes once and is charged once; what the stop cuts short (the
grace period's end, or a cold shutdown) goes back to the queue for the reaper and
another worker, and is still charged once.

Real prefork workers (as the Procfile runs them) stream from the fake OpenAI server,
slowly, so a signal lands mid-call.
"""

import os
import signal
import time

import pytest
from sqlalchemy import select

from db.models import UsageLedger
from db.session import session_scope
from tests.e2e.test_crashes import prompt_requests
from tests.fakes.services import wait_until
from tests.helpers import register, submit, wait_for

pytestmark = pytest.mark.e2e

LONG_WORDS = " ".join(f"w{n}" for n in range(60))  # seconds of streaming at 0.1 s a piece


@pytest.fixture
def env():
    return {
        **os.environ,
        "JOB_LEASE_SECONDS": "3",
        "JOB_SOFT_TIME_LIMIT": "12",
        "JOB_HARD_TIME_LIMIT": "13",
        "BROKER_VISIBILITY_TIMEOUT": "14",
        "BROKER_RESTORE_INTERVAL": "1",
        "MAINTENANCE_INTERVAL": "1",
        "WORKER_SOFT_SHUTDOWN_TIMEOUT": "1",
    }


@pytest.fixture
def headers(client):
    return register(client)[0]


def streaming_job(client, headers, fake_openai, marker: str) -> str:
    job_id = submit(client, headers, input={"prompt": f"{marker} [[slow:0.1]] {LONG_WORDS}"}).get_json()["id"]
    wait_for(client, headers, job_id, statuses=("running",), timeout=20)
    wait_until(lambda: prompt_requests(fake_openai, marker) >= 1, 20, message="the provider call")
    time.sleep(0.3)  # mid-stream
    return job_id


def billed_calls(job_id: str) -> list[tuple[int, int]]:
    with session_scope() as session:
        rows = session.execute(
            select(UsageLedger.attempt, UsageLedger.cost_micros).where(
                UsageLedger.job_id == job_id, UsageLedger.billed
            )
        )
        return [tuple(row) for row in rows]


def test_sigterm_lets_the_streaming_job_finish_once_and_takes_no_new_one(
    client, headers, processes, fake_openai
):
    start_worker, _ = processes
    worker = start_worker("deployed")
    job_id = streaming_job(client, headers, fake_openai, "sigterm-finish")

    worker.signal(signal.SIGTERM)
    time.sleep(0.2)
    worker.signal(signal.SIGTERM)  # a second one (an impatient operator) does not cut it short
    later = submit(client, headers, input={"prompt": "sent during the shutdown"}).get_json()["id"]
    assert worker.popen.wait(timeout=30) == 0

    job = wait_for(client, headers, job_id, timeout=5)
    assert job["status"] == "succeeded" and job["attempt"] == 1, job
    assert job["output"]["text"].endswith(LONG_WORDS)
    assert prompt_requests(fake_openai, "sigterm-finish") == 1
    assert billed_calls(job_id) == [(1, job["usage"]["cost_micros"])]
    assert (
        wait_for(client, headers, later, statuses=("queued",))["status"] == "queued"
    )  # left for the next worker


def test_the_grace_periods_end_leaves_the_job_to_the_reaper_charged_once(
    client, headers, processes, fake_openai
):
    start_worker, start_beat = processes
    worker = start_worker("stopping")
    start_beat()
    job_id = streaming_job(client, headers, fake_openai, "grace-ends")

    worker.signal(signal.SIGTERM)
    time.sleep(0.5)
    worker.kill_all()  # the grace period is over: SIGKILL to every process of the container
    start_worker("replacement")

    job = wait_for(client, headers, job_id, timeout=60)
    assert job["status"] == "succeeded" and job["attempt"] == 2, job
    assert prompt_requests(fake_openai, "grace-ends") == 2  # the cut call, and the re-run
    assert billed_calls(job_id) == [(2, job["usage"]["cost_micros"])]


def test_a_cold_shutdown_gives_the_job_its_soft_timeout_then_hands_it_back(
    client, headers, processes, fake_openai
):
    start_worker, start_beat = processes
    worker = start_worker("cold")
    start_beat()
    job_id = streaming_job(client, headers, fake_openai, "cold-stop")

    worker.signal(signal.SIGQUIT)
    worker.popen.wait(timeout=30)  # after WORKER_SOFT_SHUTDOWN_TIMEOUT, not after the job
    assert wait_for(client, headers, job_id, statuses=("running", "queued"))["status"] != "succeeded"
    assert "Soft Shutdown" in worker.log()
    start_worker("replacement")

    job = wait_for(client, headers, job_id, timeout=60)
    assert job["status"] == "succeeded" and job["attempt"] == 2, job
    assert prompt_requests(fake_openai, "cold-stop") == 2
    assert billed_calls(job_id) == [(2, job["usage"]["cost_micros"])]
