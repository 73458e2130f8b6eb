"""Beat tasks that recover jobs that stopped moving; the logic lives in
workers.job_recovery. Each runs under its own Redis lock (workers.locks): a run that
finds it held is skipped, so two beats or a slow run never overlap. A skipped run
returns None.

The registered task names and lock names keep their first module's name
(`conveyor.maintenance.*`): deployed beats and queued messages use them."""

from __future__ import annotations

from celery import shared_task

from settings import get_settings
from tasks.generation import dispatch
from workers import job_recovery, locks, scheduled_jobs

# Longer than a run can take, short enough that a killed run blocks few ticks.
LOCK_TIMEOUT = 300
# The due-job pickup ticks every second: a killed run must not block it for long.
DUE_LOCK_TIMEOUT = 30


@shared_task(name="conveyor.maintenance.resend_queued", ignore_result=True)
def resend_queued() -> int | None:
    return locks.run_exclusively(
        "maintenance.resend_queued",
        lambda: job_recovery.resend_queued(get_settings(), dispatch),
        timeout=LOCK_TIMEOUT,
    )


@shared_task(name="conveyor.maintenance.reap_leases", ignore_result=True)
def reap_leases() -> tuple[int, int] | None:
    return locks.run_exclusively(
        "maintenance.reap_leases",
        lambda: job_recovery.reap_lapsed_leases(get_settings(), dispatch),
        timeout=LOCK_TIMEOUT,
    )


@shared_task(name="conveyor.maintenance.expire_overdue", ignore_result=True)
def expire_overdue() -> int | None:
    return locks.run_exclusively(
        "maintenance.expire_overdue", job_recovery.expire_overdue, timeout=LOCK_TIMEOUT
    )


@shared_task(name="conveyor.maintenance.queue_scheduled", ignore_result=True)
def queue_scheduled() -> int | None:
    """Scheduled jobs whose `run_at` came: queued and admitted (workers.scheduled_jobs)."""
    return locks.run_exclusively(
        "maintenance.queue_scheduled", lambda: scheduled_jobs.queue_due(dispatch), timeout=DUE_LOCK_TIMEOUT
    )
