"""Workers killed mid-job: every accepted job still ends in exactly one terminal state,
recorded once, and nothing stays `running`.

Real prefork workers and a real beat run as subprocesses (the in-process test
worker is a solo pool and cannot be killed). Broker recovery is made quick: a
short visibility timeout and restore interval, a short lease, a reaper every second.
"""

import os
import signal
import time

import pytest

from tests.fakes.services import wait_until
from tests.helpers import register, submit, wait_for

pytestmark = pytest.mark.e2e

SLOW_WORDS = " ".join(f"w{n}" for n in range(40))  # ~2 s at 0.05 s a chunk


@pytest.fixture
def env():
    return {
        **os.environ,
        "JOB_LEASE_SECONDS": "3",
        "JOB_SOFT_TIME_LIMIT": "8",
        "JOB_HARD_TIME_LIMIT": "9",
        "BROKER_VISIBILITY_TIMEOUT": "10",
        "BROKER_RESTORE_INTERVAL": "1",
        "MAINTENANCE_INTERVAL": "1",
        "JOB_MAX_ATTEMPTS": "3",
    }


@pytest.fixture
def headers(client):
    return register(client)[0]


def prompt_requests(fake_openai, marker: str) -> int:
    return sum(marker in request["messages"][-1]["content"] for request in fake_openai.requests)


def running_job(client, headers, fake_openai, marker: str) -> str:
    """Submit a ~2 s streaming job and return once its provider call is mid-stream."""
    job_id = submit(client, headers, input={"prompt": f"{marker} [[slow:0.05]] {SLOW_WORDS}"}).get_json()[
        "id"
    ]
    wait_for(client, headers, job_id, statuses=("running",), timeout=20)
    wait_until(lambda: prompt_requests(fake_openai, marker) >= 1, 20, message="the provider call")
    time.sleep(0.3)
    return job_id


def test_sigkill_of_a_pool_child_mid_job(client, headers, processes, fake_openai):
    start_worker, start_beat = processes
    worker = start_worker()
    start_beat()
    job_id = running_job(client, headers, fake_openai, "kill-child")

    [child] = worker.children()
    os.kill(child, signal.SIGKILL)

    job = wait_for(client, headers, job_id, timeout=40)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    assert job["output"]["text"].endswith(SLOW_WORDS)
    assert prompt_requests(fake_openai, "kill-child") == 2  # the killed call and the re-run
    assert "WorkerLostError" in worker.log() or "exited with 'signal 9" in worker.log()


def test_sigkill_of_the_whole_worker_mid_job_a_new_worker_finishes_it_once(
    client, headers, processes, fake_openai
):
    start_worker, start_beat = processes
    first = start_worker("first")
    start_beat()
    job_id = running_job(client, headers, fake_openai, "kill-main")

    first.kill_all()
    start_worker("second")

    job = wait_for(client, headers, job_id, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    assert prompt_requests(fake_openai, "kill-main") == 2
    time.sleep(2)  # the restored message, if any, must not run it a third time
    assert prompt_requests(fake_openai, "kill-main") == 2
    assert wait_for(client, headers, job_id)["finished_at"] == job["finished_at"]


def test_a_job_whose_worker_keeps_dying_fails_worker_lost_and_stops(client, headers, processes, fake_openai):
    start_worker, start_beat = processes
    worker = start_worker()
    start_beat()
    job_id = submit(client, headers, input={"prompt": f"poison [[slow:0.05]] {SLOW_WORDS}"}).get_json()["id"]

    for attempt in (1, 2, 3):
        wait_until(
            lambda attempt=attempt: prompt_requests(fake_openai, "poison") == attempt,
            40,
            message=f"attempt {attempt} to call the provider",
        )
        time.sleep(0.3)
        for child in worker.children():
            os.kill(child, signal.SIGKILL)

    job = wait_for(client, headers, job_id, timeout=40)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "worker_lost" and job["attempt"] == 3
    time.sleep(3)
    assert prompt_requests(fake_openai, "poison") == 3  # never looped
    assert wait_for(client, headers, job_id)["status"] == "failed"


def test_a_duplicate_delivery_to_a_second_worker_does_not_run_it_twice(
    client, headers, processes, fake_openai
):
    from tasks.generation import dispatch

    start_worker, _ = processes
    workers = [start_worker("one"), start_worker("two")]
    job_id = running_job(client, headers, fake_openai, "duplicate")
    dispatch(job_id, queue="ai")  # the same message again, while the first worker streams

    job = wait_for(client, headers, job_id, timeout=30)
    assert job["status"] == "succeeded" and job["attempt"] == 1
    time.sleep(1)
    assert prompt_requests(fake_openai, "duplicate") == 1
    refused = f"job_id={job_id} not started: finished, expired, or held by another worker"
    assert any(refused in worker.log() for worker in workers)
