"""Webhook tasks: deliver one (by id), and the beat's sweep that sends the due ones.
The logic lives in workers.webhooks.delivery."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task

from workers import locks
from workers.webhooks import delivery

logger = logging.getLogger(__name__)

DELIVER = "conveyor.webhooks.deliver"


@shared_task(name=DELIVER, acks_late=True, ignore_result=True)
def deliver(delivery_id: str) -> str | None:
    # A duplicate message is harmless: an attempt starts with a compare-and-set claim.
    return delivery.deliver(uuid.UUID(delivery_id))


@shared_task(name="conveyor.webhooks.sweep", ignore_result=True)
def sweep() -> int | None:
    return locks.run_exclusively("webhooks.sweep", _sweep, timeout=300)


def _sweep() -> int:
    ids = delivery.sweep()
    for delivery_id in ids:
        send(delivery_id)
    return len(ids)


def send(delivery_id: uuid.UUID) -> None:
    deliver.apply_async(args=[str(delivery_id)])


def deliver_for_job(job_id: uuid.UUID) -> None:
    """Send a just-finished job's webhook now rather than at the next sweep.
    Call after the job's outcome is committed."""
    delivery_id = delivery.due_for_job(job_id)
    if delivery_id is None:
        return
    try:
        send(delivery_id)
    except Exception:
        # Only a shortcut: the delivery is in the outbox and the sweep sends it.
        logger.warning("job_id=%s webhook enqueue failed; left for the sweep", job_id, exc_info=True)
