"""Admin bulk operations too large for a request: the task that works through one (by
id), and the beat's sweep that resumes one whose run died. The logic lives in
workers.bulk_operations."""

from __future__ import annotations

import uuid

from celery import shared_task

from settings import get_settings
from tasks.generation import announce_finished, dispatch
from workers import bulk_operations, locks

RUN = "conveyor.admin.bulk_run"


@shared_task(name=RUN, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run(operation_id: str) -> str | None:
    """A run gives up after half a lease, recording where it got to, and sends the next:
    no run nears the time limits or holds a worker from other work for long. A second
    delivery finds the lease held, or the operation ended, and does nothing."""
    settings = get_settings()
    outcome = bulk_operations.run(
        uuid.UUID(operation_id),
        settings=settings,
        send=dispatch,
        announce=announce_finished,
        budget=settings.bulk_admin_lease_seconds / 2,
    )
    if outcome == bulk_operations.CONTINUE:
        send(uuid.UUID(operation_id))
    return outcome


@shared_task(name="conveyor.admin.resume_bulk_operations", ignore_result=True)
def resume_stalled() -> tuple[int, int] | None:
    return locks.run_exclusively(
        "admin.resume_bulk_operations",
        lambda: bulk_operations.resume_stalled(get_settings(), send),
        timeout=300,
    )


def send(operation_id: uuid.UUID) -> None:
    """Send the operation's message. Call only after its row is committed."""
    run.apply_async(args=[str(operation_id)])
