"""Export tasks on the `exports` queue: build one export (by id), and the beat's
sweep that re-sends exports whose message was lost. The logic lives in
workers.exports.build and workers.exports.recovery."""

from __future__ import annotations

import uuid

from celery import shared_task

from settings import get_settings
from tasks import email
from workers import locks
from workers.exports import build as exports
from workers.exports import recovery

BUILD = "conveyor.exports.build"


@shared_task(name=BUILD, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def build(export_id: str) -> str | None:
    # A duplicate message is harmless: the build starts with a compare-and-set.
    outcome = exports.build(uuid.UUID(export_id))
    if outcome is None:
        return None
    if outcome.email_ids:
        email.send_soon(outcome.email_ids)
    return outcome.status


@shared_task(name="conveyor.exports.resend", ignore_result=True)
def resend() -> int | None:
    return locks.run_exclusively(
        "exports.resend", lambda: recovery.resend_lost(get_settings(), dispatch), timeout=300
    )


def dispatch(export_id: uuid.UUID) -> None:
    """Send the export's message. Call only after its row is committed."""
    build.apply_async(args=[str(export_id)])
