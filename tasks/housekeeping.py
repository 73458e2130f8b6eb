"""Beat tasks that keep stored data in bounds and report to the admins. Each runs
under its own Redis lock (workers.locks), so two beats never run one side by side.
The logic lives in workers.housekeeping."""

from __future__ import annotations

from celery import shared_task

from settings import get_settings
from tasks import email
from workers import housekeeping, locks

CLEANUP_LOCK_TIMEOUT = 30 * 60


@shared_task(name="conveyor.housekeeping.purge_expired_results", ignore_result=True)
def purge_expired_results() -> int | None:
    purged = locks.run_exclusively(
        "housekeeping.purge_expired_results",
        lambda: housekeeping.purge_expired_results(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
    return None if purged is None else purged.outputs + purged.exports


@shared_task(name="conveyor.housekeeping.purge_unverified_accounts", ignore_result=True)
def purge_unverified_accounts() -> int | None:
    purged = locks.run_exclusively(
        "housekeeping.purge_unverified_accounts",
        lambda: housekeeping.purge_unverified_accounts(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
    return None if purged is None else purged.accounts


@shared_task(name="conveyor.housekeeping.purge_expired_refresh_tokens", ignore_result=True)
def purge_expired_refresh_tokens() -> int | None:
    purged = locks.run_exclusively(
        "housekeeping.purge_expired_refresh_tokens",
        lambda: housekeeping.purge_expired_refresh_tokens(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
    return None if purged is None else purged.refresh_tokens


@shared_task(name="conveyor.housekeeping.daily_report", ignore_result=True)
def daily_report() -> int | None:
    queued = locks.run_exclusively("housekeeping.daily_report", housekeeping.send_daily_report, timeout=600)
    if queued is None:
        return None
    email.send_soon(queued)
    return len(queued)
