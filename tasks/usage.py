"""The beat's usage roll-up: fold new ledger rows into usage_daily
(the logic lives in workers.metering)."""

from __future__ import annotations

from celery import shared_task

from workers import locks, metering


@shared_task(name="conveyor.usage.rollup", ignore_result=True)
def rollup() -> int | None:
    # The roll-up is also serialised in the database (an advisory lock), which is what
    # keeps it correct; this lock only saves a second run from queueing behind it.
    return locks.run_exclusively("usage.rollup", metering.roll_up, timeout=600)
