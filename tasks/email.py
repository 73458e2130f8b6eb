"""Email tasks on the `email` queue: send one outbox email (by id), and the beat's
sweep that sends the due ones. The logic lives in workers.mail.delivery."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task

from workers import locks
from workers.mail import delivery

logger = logging.getLogger(__name__)

SEND = "conveyor.email.send"


@shared_task(name=SEND, acks_late=True, ignore_result=True)
def send(outbox_id: str) -> str | None:
    # A duplicate message is harmless: an attempt starts with a compare-and-set claim.
    return delivery.send(uuid.UUID(outbox_id))


@shared_task(name="conveyor.email.sweep", ignore_result=True)
def sweep() -> int | None:
    return locks.run_exclusively("email.sweep", _sweep, timeout=300)  # None: another run holds it


def _sweep() -> int:
    ids = delivery.sweep()
    _enqueue(ids)
    return len(ids)


def send_soon(outbox_ids: list[uuid.UUID]) -> None:
    """Send just-queued emails now rather than at the next sweep. Call after the
    transaction that queued them (workers.mail.outbox.enqueue) has committed."""
    try:
        _enqueue(delivery.due_among([i for i in outbox_ids if i is not None]))
    except Exception:
        # Only a shortcut: the emails are in the outbox and the sweep sends them.
        logger.warning("outbox_ids=%s email enqueue failed; left for the sweep", outbox_ids, exc_info=True)


def send_for_job(job_id: uuid.UUID) -> None:
    """Send a just-finished job's email (if it asked for one) without waiting for
    the sweep. Call after the job's outcome is committed."""
    try:
        _enqueue(delivery.due_for_job(job_id))
    except Exception:
        logger.warning("job_id=%s email enqueue failed; left for the sweep", job_id, exc_info=True)


def _enqueue(outbox_ids: list[uuid.UUID]) -> None:
    for outbox_id in outbox_ids:
        send.apply_async(args=[str(outbox_id)])
