"""Stripe event tasks on the `default` queue: process one stored event (by id), and
the beat's sweep that re-sends events left unprocessed. The logic lives in
workers.billing.events."""

from __future__ import annotations

import logging

from celery import shared_task

from tasks import email
from workers import locks
from workers.billing import events
from workers.billing.stripe_api import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

PROCESS = "conveyor.billing.process_event"


@shared_task(
    name=PROCESS,
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def process_event(event_id: str) -> str:
    # A duplicate message is harmless: processing starts with a compare-and-set claim.
    outcome = events.process(event_id)
    email.send_soon(outcome.email_ids)
    return outcome.status


@shared_task(name="conveyor.billing.sweep_events", ignore_result=True)
def sweep_events() -> int | None:
    return locks.run_exclusively("billing.sweep_events", _sweep, timeout=300)


def _sweep() -> int:
    ids = events.due_for_retry()
    for event_id in ids:
        send(event_id)
    return len(ids)


def send(event_id: str) -> None:
    process_event.apply_async(args=[event_id])


def send_soon(event_id: str) -> None:
    """Process a just-stored event now rather than at the next sweep. Call after the
    event's row is committed."""
    try:
        send(event_id)
    except Exception:
        # Only a shortcut: the event is stored and the sweep sends it.
        logger.warning("stripe event_id=%s enqueue failed; left for the sweep", event_id, exc_info=True)
