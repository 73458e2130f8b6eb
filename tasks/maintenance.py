"""Beat tasks that keep jobs moving; the logic lives in workers.maintenance."""

from __future__ import annotations

from celery import shared_task

from settings import get_settings
from tasks.generation import dispatch
from workers import maintenance


@shared_task(name="conveyor.maintenance.resend_queued", ignore_result=True)
def resend_queued() -> int:
    return maintenance.resend_queued(get_settings(), dispatch)


@shared_task(name="conveyor.maintenance.reap_leases", ignore_result=True)
def reap_leases() -> tuple[int, int]:
    return maintenance.reap_lapsed_leases(get_settings(), dispatch)


@shared_task(name="conveyor.maintenance.expire_overdue", ignore_result=True)
def expire_overdue() -> int:
    return maintenance.expire_overdue()
