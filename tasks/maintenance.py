"""Beat tasks that keep jobs moving; the logic lives in workers.maintenance. Each
runs under its own Redis lock (workers.locks): a run that finds it held is skipped,
so two beats or a slow run never overlap. A skipped run returns None."""

from __future__ import annotations

from celery import shared_task

from settings import get_settings
from tasks.generation import dispatch
from workers import locks, maintenance

# Longer than a run can take, short enough that a killed run blocks few ticks.
LOCK_TIMEOUT = 300


@shared_task(name="conveyor.maintenance.resend_queued", ignore_result=True)
def resend_queued() -> int | None:
    return locks.run_exclusively(
        "maintenance.resend_queued",
        lambda: maintenance.resend_queued(get_settings(), dispatch),
        timeout=LOCK_TIMEOUT,
    )


@shared_task(name="conveyor.maintenance.reap_leases", ignore_result=True)
def reap_leases() -> tuple[int, int] | None:
    return locks.run_exclusively(
        "maintenance.reap_leases",
        lambda: maintenance.reap_lapsed_leases(get_settings(), dispatch),
        timeout=LOCK_TIMEOUT,
    )


@shared_task(name="conveyor.maintenance.expire_overdue", ignore_result=True)
def expire_overdue() -> int | None:
    return locks.run_exclusively(
        "maintenance.expire_overdue", maintenance.expire_overdue, timeout=LOCK_TIMEOUT
    )
