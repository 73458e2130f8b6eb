"""The batch lane's beat task: on the beat's schedule, under its lock, and with the
offline provider only the take-out (no provider to send batches to)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import celeryconfig
from db.redis_client import get_redis
from tasks import batch_lane as batch_lane_task
from tasks.generation import dispatch
from tests.helpers import API, register, submit
from workers import locks
from workers.batch_lane import tick


def held_job(client, **extra) -> tuple[dict, dict]:
    headers = register(client)[0]
    response = submit(client, headers, lane="batch", **extra)
    assert response.status_code == 202, response.get_json()
    return headers, response.get_json()


def test_the_beat_runs_the_tick_every_interval(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in celeryconfig.beat_schedule.values()}
    assert schedule["conveyor.batch_lane.tick"] == settings.batch_lane_interval
    assert celeryconfig.task_routes["conveyor.batch_lane.tick"] == {"queue": "maintenance"}


def test_a_tick_that_finds_the_lock_held_is_skipped(client, fake_openai):
    held_job(client)
    lock = get_redis().lock(locks.lock_key("batch_lane.tick"), timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert batch_lane_task.tick() is None
    finally:
        lock.release()
    assert fake_openai.batches.created() == []  # nothing was sent
    assert batch_lane_task.tick() == 0
    assert len(fake_openai.batches.created()) == 1


def test_without_the_openai_provider_held_jobs_still_leave_by_their_deadline(client, settings, fake_openai):
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1.1)
    headers, job = held_job(client, deadline=deadline.isoformat())
    offline = dataclasses.replace(
        settings, ai_provider="offline", batch_lane_takeout=2 * 3600, job_start_deadline=2 * 3600
    )
    taken = tick.run(offline, dispatch).taken_out
    assert [str(job_id) for job_id, _owner in taken] == [job["id"]]
    shown = client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()
    assert (shown["status"], shown["lane"]) == ("queued", "standard")
    # At least JOB_START_DEADLINE to start from now, though its deadline is nearer.
    left = dt.datetime.fromisoformat(shown["expires_at"]) - dt.datetime.now(dt.UTC)
    assert left > dt.timedelta(hours=1.9)
    assert fake_openai.batches.created() == []
