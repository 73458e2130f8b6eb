"""Fairness and priority with a real prefork worker: one user's backlog does not
starve others, a user never runs more than their plan allows, paid work goes first."""

import pytest
from sqlalchemy import update

from db.models import User
from db.session import session_scope
from tests.helpers import register, submit, wait_for

pytestmark = pytest.mark.e2e

WORDS = " ".join(f"w{n}" for n in range(12))  # ~0.6 s each


def set_plan(body, plan: str) -> None:
    with session_scope() as session:
        session.execute(update(User).where(User.id == body["user"]["id"]).values(plan=plan))


def overlap(jobs: list[dict]) -> int:
    """The most of these jobs that were running at the same moment."""
    moments = sorted([(job["started_at"], 1) for job in jobs] + [(job["finished_at"], -1) for job in jobs])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    return peak


def test_a_heavy_user_does_not_starve_a_light_one(client, processes):
    heavy, _ = register(client)
    light, _ = register(client)
    heavy_ids = [
        submit(client, heavy, input={"prompt": f"heavy {n} [[slow:0.05]] {WORDS}"}).get_json()["id"]
        for n in range(8)
    ]
    light_ids = [
        submit(client, light, input={"prompt": f"light {n} [[slow:0.05]] {WORDS}"}).get_json()["id"]
        for n in range(2)
    ]
    start_worker, _ = processes
    start_worker(concurrency=3)

    heavy_jobs = [wait_for(client, heavy, job_id, timeout=60) for job_id in heavy_ids]
    light_jobs = [wait_for(client, light, job_id, timeout=60) for job_id in light_ids]
    assert {job["status"] for job in heavy_jobs + light_jobs} == {"succeeded"}
    assert overlap(heavy_jobs) <= 2  # the free plan's running limit
    heavy_starts = sorted(job["started_at"] for job in heavy_jobs)
    assert max(job["started_at"] for job in light_jobs) < heavy_starts[4]  # not behind the whole backlog


def test_paid_jobs_are_taken_before_free_ones(client, processes):
    free, _ = register(client)
    paid, paid_body = register(client)
    set_plan(paid_body, "pro")
    free_ids = [
        submit(client, free, input={"prompt": f"free {n} [[slow:0.05]] {WORDS}"}).get_json()["id"]
        for n in range(2)
    ]
    paid_ids = [
        submit(client, paid, input={"prompt": f"paid {n} [[slow:0.05]] {WORDS}"}).get_json()["id"]
        for n in range(3)
    ]
    start_worker, _ = processes
    start_worker(concurrency=1)

    free_jobs = [wait_for(client, free, job_id, timeout=60) for job_id in free_ids]
    paid_jobs = [wait_for(client, paid, job_id, timeout=60) for job_id in paid_ids]
    assert max(job["started_at"] for job in paid_jobs) < min(job["started_at"] for job in free_jobs)
