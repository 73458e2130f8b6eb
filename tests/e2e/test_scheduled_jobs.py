"""Scheduled jobs through the Procfile's real processes (web, workers, beat): a delayed
job waits, then runs once; stopping every process while it waits loses nothing."""

import datetime as dt
import time
import uuid

import pytest

from tests.e2e.conftest import launch_stack
from tests.helpers import call, poll, register_and_submit

pytestmark = pytest.mark.e2e

PROCESSES = ("web", "worker_ai", "worker", "maintenance", "beat")


@pytest.fixture
def stacks(tmp_path, fake_openai):
    """launch(): start the Procfile's processes; returns (base URL, stop)."""
    running = []

    def launch():
        base, stop_stack = launch_stack(tmp_path, PROCESSES)
        running.append(stop_stack)

        def stop():
            running.remove(stop_stack)
            stop_stack()

        return base, stop

    yield launch
    for stop_stack in running:
        stop_stack()


def schedule(base: str, token: str, prompt: str, delay_seconds: int) -> dict:
    status, _, job = call(
        "POST",
        f"{base}/jobs",
        {"tool": "text", "input": {"prompt": prompt}, "delay_seconds": delay_seconds},
        token,
    )
    assert status == 202, job
    return job


def provider_calls(fake_openai, prompt: str) -> int:
    return sum(prompt in str(request["messages"]) for request in fake_openai.requests)


def assert_ran_once_when_due(job: dict, fake_openai, prompt: str) -> None:
    assert job["status"] == "succeeded", job
    assert job["output"] == {"text": f"Echo: {prompt}"}
    assert dt.datetime.fromisoformat(job["started_at"]) >= dt.datetime.fromisoformat(job["run_at"])
    assert job["attempt"] == 1 and provider_calls(fake_openai, prompt) == 1


def test_a_delayed_job_is_scheduled_then_runs_once(stacks, fake_openai):
    base, _stop = stacks()
    token, _ = register_and_submit(base, "warm up", email=f"{uuid.uuid4().hex[:8]}@example.com")
    prompt = f"Later {uuid.uuid4().hex[:6]}"

    job = schedule(base, token, prompt, delay_seconds=2)

    assert job["status"] == "scheduled" and job["run_at"]
    assert provider_calls(fake_openai, prompt) == 0
    assert_ran_once_when_due(poll(base, token, job), fake_openai, prompt)


def test_a_job_that_came_due_while_every_process_was_down_runs_after_the_restart(stacks, fake_openai):
    base, stop = stacks()
    token, _ = register_and_submit(base, "warm up", email=f"{uuid.uuid4().hex[:8]}@example.com")
    prompt = f"Across a restart {uuid.uuid4().hex[:6]}"
    job = schedule(base, token, prompt, delay_seconds=2)
    stop()

    run_at = dt.datetime.fromisoformat(job["run_at"])
    time.sleep(max(0.0, (run_at - dt.datetime.now(dt.UTC)).total_seconds()) + 1)  # it is due, nothing runs
    assert provider_calls(fake_openai, prompt) == 0

    base, _stop = stacks()
    status, _, seen = call("GET", f"{base}/jobs/{job['id']}", token=token)
    assert status == 200 and seen["status"] in ("scheduled", "queued", "running", "succeeded")
    assert_ran_once_when_due(poll(base, token, seen), fake_openai, prompt)
