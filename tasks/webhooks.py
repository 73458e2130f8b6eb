"""Webhook tasks: deliver one (by id), and the beat's sweep that sends the due ones.
The logic lives in workers.webhooks.delivery."""

from __future__ import annotations

import uuid

from celery import shared_task

from tasks import outbox
from workers.webhooks import delivery

DELIVER = "conveyor.webhooks.deliver"


@shared_task(name=DELIVER, acks_late=True, ignore_result=True)
def deliver(delivery_id: str) -> str | None:
    # A duplicate message is harmless: an attempt starts with a compare-and-set claim.
    return delivery.deliver(uuid.UUID(delivery_id))


sweep = outbox.sweep_task("conveyor.webhooks.sweep", lock="webhooks.sweep", task=deliver, due=delivery.sweep)


def deliver_for_job(job_id: uuid.UUID) -> None:
    """Send a just-finished job's webhook now rather than at the next sweep.
    Call after the job's outcome is committed."""
    outbox.enqueue_soon(deliver, lambda: _due_for_job(job_id), f"job_id={job_id} webhook")


def _due_for_job(job_id: uuid.UUID) -> list[uuid.UUID]:
    delivery_id = delivery.due_for_job(job_id)
    return [delivery_id] if delivery_id is not None else []


def deliver_for_batch(batch_id: uuid.UUID) -> None:
    """Send a just-finished batch's `batch.finished` webhook now rather than at the next
    sweep. Call after the commit that ended one of its jobs (the batch may not be finished)."""
    outbox.enqueue_soon(deliver, lambda: delivery.due_for_batch(batch_id), f"batch_id={batch_id} webhook")
