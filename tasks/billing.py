"""Stripe event tasks on the `default` queue: process one stored event (by id), and
the beat's sweep that re-sends events left unprocessed. The logic lives in
workers.billing.stripe_events."""

from __future__ import annotations

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from tasks import email, outbox
from workers.billing import stripe_api, stripe_events

PROCESS = "conveyor.billing.process_event"
RETRY_BACKOFF = 5  # seconds before the first retry, doubling up to RETRY_BACKOFF_MAX (with jitter)
RETRY_BACKOFF_MAX = 300
MAX_RETRIES = 5


@shared_task(name=PROCESS, bind=True, acks_late=True, ignore_result=True, max_retries=MAX_RETRIES)
def process_stripe_event(self: Task, event_id: str) -> str:
    # A duplicate message is harmless: processing starts with a compare-and-set claim.
    try:
        outcome = stripe_events.process(event_id)
    except Exception as error:
        # Celery's autoretry_for would need Stripe's error classes, and so the SDK, in
        # every worker that loads this module; the check imports nothing.
        if not stripe_api.is_transient(error):
            raise
        wait = get_exponential_backoff_interval(
            RETRY_BACKOFF, self.request.retries, RETRY_BACKOFF_MAX, full_jitter=True
        )
        raise self.retry(exc=error, countdown=wait) from None
    email.send_soon(outcome.email_ids)
    return outcome.status


sweep_stripe_events = outbox.sweep_task(
    "conveyor.billing.sweep_events",
    lock="billing.sweep_events",
    task=process_stripe_event,
    due=stripe_events.due_for_retry,
)


def send_soon(event_id: str) -> None:
    """Process a just-stored event now rather than at the next sweep. Call after the
    event's row is committed."""
    outbox.enqueue_soon(process_stripe_event, lambda: [event_id], f"stripe event_id={event_id}")
