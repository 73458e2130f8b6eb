"""Beat tasks that keep stored data in bounds. Each runs under its own Redis lock
(workers.locks), so two beats never run one side by side. The logic lives in
workers.cleanup.

The registered task names and lock names keep their first module's name
(`conveyor.housekeeping.*`): deployed beats and queued messages use them."""

from __future__ import annotations

from celery import shared_task

from settings import get_settings
from workers import cleanup, locks, response_cache

CLEANUP_LOCK_TIMEOUT = 30 * 60


@shared_task(name="conveyor.housekeeping.purge_expired_results", ignore_result=True)
def purge_expired_results() -> int | None:
    purged = locks.run_exclusively(
        "housekeeping.purge_expired_results",
        lambda: cleanup.purge_expired_results(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
    return None if purged is None else purged.outputs + purged.exports


@shared_task(name="conveyor.housekeeping.purge_unverified_accounts", ignore_result=True)
def purge_unverified_accounts() -> int | None:
    purged = locks.run_exclusively(
        "housekeeping.purge_unverified_accounts",
        lambda: cleanup.purge_unverified_accounts(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
    return None if purged is None else purged.accounts


@shared_task(name="conveyor.housekeeping.purge_expired_refresh_tokens", ignore_result=True)
def purge_expired_refresh_tokens() -> int | None:
    purged = locks.run_exclusively(
        "housekeeping.purge_expired_refresh_tokens",
        lambda: cleanup.purge_expired_refresh_tokens(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
    return None if purged is None else purged.refresh_tokens


@shared_task(name="conveyor.housekeeping.sweep_response_cache", ignore_result=True)
def sweep_response_cache() -> int | None:
    return locks.run_exclusively(
        "housekeeping.sweep_response_cache",
        lambda: response_cache.sweep(get_settings()),
        timeout=CLEANUP_LOCK_TIMEOUT,
    )
