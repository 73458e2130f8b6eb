"""Where each kind of task goes, how long it may run, and how stale a beat tick may get:
the sweeps and job recovery have a queue (and a Procfile line) of their own, so the
reaper never waits behind webhook deliveries or AI jobs."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import celeryconfig
from db.models import Job
from db.session import session_scope
from tasks import batch_lane, exports, generation, job_recovery, webhooks  # noqa: F401 - registers their tasks
from tests import rows
from tests.fakes.services import wait_until
from workers.celery_app import app

ROOT = Path(__file__).resolve().parents[2]


def queue_of(name: str) -> str:
    return app.amqp.router.route({}, name)["queue"].name


def test_every_beat_task_goes_to_the_maintenance_queue_and_expires_within_its_interval():
    for entry_name, entry in celeryconfig.beat_schedule.items():
        assert queue_of(entry["task"]) == "maintenance", entry_name
        expires = entry["options"]["expires"]
        interval = entry["schedule"] if isinstance(entry["schedule"], float) else 3600.0
        assert 0 < expires <= max(interval, 10.0), entry_name


def test_the_work_the_sweeps_hand_out_stays_on_its_own_queues():
    assert queue_of("conveyor.generation.run") == "ai"
    assert queue_of("conveyor.webhooks.deliver") == "default"
    assert queue_of("conveyor.billing.process_event") == "default"
    assert queue_of("conveyor.accounts.delete_user") == "default"
    assert queue_of("conveyor.email.send") == "email"
    assert queue_of("conveyor.exports.build") == "exports"


def test_sweeps_and_deliveries_have_short_limits_and_jobs_keep_the_job_limits(settings):
    def limits(name: str) -> tuple[float, float]:
        task = app.tasks[name]
        return (
            task.soft_time_limit or app.conf.task_soft_time_limit,
            task.time_limit or app.conf.task_time_limit,
        )

    job_limits = (settings.job_soft_time_limit, settings.job_hard_time_limit)
    assert limits("conveyor.generation.run") == job_limits
    assert limits("conveyor.exports.build") == job_limits
    assert limits("conveyor.batch_lane.tick") == job_limits  # its uploads and downloads
    short = (min(60, job_limits[0]), min(90, job_limits[1]))
    for name in ("conveyor.maintenance.reap_leases", "conveyor.webhooks.sweep", "conveyor.webhooks.deliver"):
        assert limits(name) == short, name


def test_workers_are_recycled_by_memory_and_soft_shutdown_is_on(settings):
    assert app.conf.worker_max_memory_per_child == settings.worker_max_memory_per_child > 0
    assert app.conf.worker_soft_shutdown_timeout == settings.worker_soft_shutdown_timeout > 0


def test_every_queue_has_a_procfile_line_that_consumes_it():
    consumed = set()
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.search(r"worker --queues (\S+)", line)
        if match:
            consumed.update(match.group(1).split(","))
    assert consumed == set(celeryconfig.QUEUES)
    assert "--queues maintenance " in (ROOT / "Procfile").read_text()  # a line of its own


def test_the_suites_worker_runs_what_the_beat_sends(celery_worker):
    """The in-process worker (tests/conftest.py) consumes `maintenance` too: a beat task
    sent as the beat sends it runs."""
    job_id = rows.queued_job(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    job_recovery.expire_overdue.apply_async()
    wait_until(lambda: job_status(job_id) == "expired", 15, message="the maintenance task to run")


def job_status(job_id) -> str:
    with session_scope() as session:
        return session.get(Job, job_id).status
