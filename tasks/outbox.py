"""What the outbox tasks (email, webhooks, Stripe events) share: a message per due
row to the task that attempts it, the beat's sweep under a lock, and the shortcut
that sends just-queued rows without waiting for the sweep."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from celery import Task, shared_task

from workers import locks

logger = logging.getLogger(__name__)

SWEEP_LOCK_SECONDS = 300  # longer than a sweep can run


def enqueue(task: Task, row_ids: Sequence[Any]) -> int:
    for row_id in row_ids:
        task.apply_async(args=[str(row_id)])
    return len(row_ids)


def enqueue_soon(task: Task, due: Callable[[], Sequence[Any]], about: str) -> None:
    """Send the rows `due()` names now rather than at the next sweep. Call after the
    transaction that queued them has committed."""
    try:
        enqueue(task, due())
    except Exception:
        # Only a shortcut: the rows are in the outbox and the sweep sends them.
        logger.warning("%s enqueue failed; left for the sweep", about, exc_info=True)


def sweep_task(name: str, *, lock: str, task: Task, due: Callable[[], Sequence[Any]]) -> Task:
    """The beat's task that sends `task` a message for each row `due()` names, one run
    at a time (None: another run holds the lock, so two sweeps never hand out a row twice)."""

    def sweep() -> int | None:
        return locks.run_exclusively(lock, lambda: enqueue(task, due()), timeout=SWEEP_LOCK_SECONDS)

    return shared_task(name=name, ignore_result=True)(sweep)
