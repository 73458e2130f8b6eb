"""The beat's daily report to the admins, under its own Redis lock (workers.locks).
The logic lives in workers.daily_report.

The registered task name and lock name keep their first module's name
(`conveyor.housekeeping.daily_report`): deployed beats and queued messages use them."""

from __future__ import annotations

from celery import shared_task

from tasks import email
from workers import daily_report as report
from workers import locks


@shared_task(name="conveyor.housekeeping.daily_report", ignore_result=True)
def daily_report() -> int | None:
    queued = locks.run_exclusively("housekeeping.daily_report", report.send_daily_report, timeout=600)
    if queued is None:
        return None
    email.send_soon(queued)
    return len(queued)
