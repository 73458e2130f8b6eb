"""Email tasks on the `email` queue: send one outbox email (by id), and the beat's
sweep that sends the due ones. The logic lives in workers.mail.delivery."""

from __future__ import annotations

import uuid

from celery import shared_task

from tasks import outbox
from workers.mail import delivery

SEND = "conveyor.email.send"


@shared_task(name=SEND, acks_late=True, ignore_result=True)
def send(outbox_id: str) -> str | None:
    # A duplicate message is harmless: an attempt starts with a compare-and-set claim.
    return delivery.send(uuid.UUID(outbox_id))


sweep = outbox.sweep_task("conveyor.email.sweep", lock="email.sweep", task=send, due=delivery.sweep)


def send_soon(outbox_ids: list[uuid.UUID]) -> None:
    """Send just-queued emails now rather than at the next sweep. Call after the
    transaction that queued them (workers.mail.outbox.enqueue) has committed."""
    ids = [i for i in outbox_ids if i is not None]
    outbox.enqueue_soon(send, lambda: delivery.due_among(ids), f"outbox_ids={outbox_ids} email")


def send_for_job(job_id: uuid.UUID) -> None:
    """Send a just-finished job's email (if it asked for one) without waiting for
    the sweep. Call after the job's outcome is committed."""
    outbox.enqueue_soon(send, lambda: delivery.due_for_job(job_id), f"job_id={job_id} email")
