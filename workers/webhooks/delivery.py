"""Deliver a finished job's webhook through the outbox loop (workers.outbox): check
the URL again, sign, POST once.

A 2xx delivers it; a URL the guard refuses fails it at once; any other answer, a
timeout or a connection error is retried on RETRY_SCHEDULE until WEBHOOK_MAX_AGE
has passed since the first attempt. Every attempt carries the same `webhook-id`,
so receivers can fold the copies an at-least-once delivery can make.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db.models.webhook import DELIVERED, FAILED, PENDING
from db.repositories import batches, jobs, webhooks
from settings import Settings, get_settings
from workers import logs, metrics
from workers import outbox as loop
from workers.webhooks import guard, payload, signing, transport

logger = logging.getLogger(__name__)

# Seconds before the retry after attempt n, then the last one apart, each with jitter.
RETRY_SCHEDULE = (10, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
# Beyond the request's own time limit, for the DNS lookup and a second address.
HOLD_MARGIN = 10


@dataclass(frozen=True)
class Outgoing:
    """One delivery, copied out of the session before it is closed."""

    delivery_id: uuid.UUID
    job_id: uuid.UUID | None  # None for a batch's `batch.finished`
    url: str
    body: str
    secret: str


def _load(session: Session, delivery: Any) -> Outgoing:
    if delivery.batch_id is not None:
        return _load_batch(session, delivery)
    job = jobs.get(session, job_id=delivery.job_id)
    # This attempt's log lines belong to the job, and to the request that submitted it.
    logs.bind(job_id=delivery.job_id, request_id=job.request_id if job is not None else None)
    return Outgoing(
        delivery_id=delivery.id,
        job_id=delivery.job_id,
        url=delivery.url,
        body=payload.body(event=delivery.event, occurred_at=delivery.created_at, job=job),
        secret=webhooks.secret_of(session, user_id=delivery.user_id, new_secret=signing.new_secret()),
    )


def _load_batch(session: Session, delivery: Any) -> Outgoing:
    batch = batches.get(session, batch_id=delivery.batch_id)
    counts = batches.counts(session, batch_ids=[delivery.batch_id])[delivery.batch_id]
    return Outgoing(
        delivery_id=delivery.id,
        job_id=None,
        url=delivery.url,
        body=payload.batch_body(
            event=delivery.event, occurred_at=delivery.created_at, batch=batch, counts=counts
        ),
        secret=webhooks.secret_of(session, user_id=delivery.user_id, new_secret=signing.new_secret()),
    )


WEBHOOK = loop.Kind(
    logger=logger,
    name="webhooks",
    table=webhooks.TABLE,
    id_name="delivery_id",
    load=_load,
    retries=loop.Retries(RETRY_SCHEDULE),  # and WEBHOOK_MAX_AGE from the settings: see _kind
    labels=lambda outgoing: {"job_id": outgoing.job_id},
    metric=metrics.webhook_delivery,
)


def _kind(settings: Settings) -> loop.Kind:
    return dataclasses.replace(
        WEBHOOK, retries=loop.Retries(RETRY_SCHEDULE, max_age=settings.webhook_max_age)
    )


def deliver(
    delivery_id: uuid.UUID, *, settings: Settings | None = None, resolve: guard.Resolve = socket.getaddrinfo
) -> str | None:
    """Make one attempt if the delivery is due. Returns the status it is left in,
    or None when this call did not attempt it (not due, held, or finished)."""
    settings = settings or get_settings()
    hold = 2 * settings.webhook_timeout + HOLD_MARGIN
    post = functools.partial(_post, settings=settings, resolve=resolve)
    result = loop.attempt(_kind(settings), delivery_id, hold_seconds=hold, transport=post)
    return result.status if result else None


def _post(claim: loop.Claim, *, settings: Settings, resolve: guard.Resolve) -> loop.Result:
    outgoing = claim.item
    try:
        # Checked again now: the address the host resolves to may have changed since submit.
        target = guard.check(outgoing.url, settings, resolve=resolve)
    except guard.Unresolvable as problem:
        return loop.Result(PENDING, error=str(problem))
    except guard.UnsafeUrl as problem:
        return loop.Result(FAILED, error=f"Refused: {problem}.")
    headers = signing.signed_headers(
        outgoing.secret, message_id=str(outgoing.delivery_id), body=outgoing.body
    )
    response = transport.post(
        target, body=outgoing.body.encode(), headers=headers, timeout=settings.webhook_timeout
    )
    code = response.status_code
    fields = {"status_code": code, "duration_ms": response.duration_ms}
    if code is not None and 200 <= code < 300:
        return loop.Result(DELIVERED, fields=fields)
    if code is None:
        error = response.error
    elif 300 <= code < 400:
        error = f"HTTP {code}: redirects are not followed (Location: {response.location or '-'})"
    else:
        error = f"HTTP {code}"
    return loop.Result(PENDING, error=error, fields=fields)


def sweep(settings: Settings | None = None) -> list[uuid.UUID]:
    """Deliveries to send a message for now: due ones, and those whose worker died
    mid-attempt (their lost attempt is logged)."""
    return loop.sweep(_kind(settings or get_settings()))


def due_for_job(job_id: uuid.UUID) -> uuid.UUID | None:
    """The finished job's delivery, if it is due and no message is out for it yet."""
    ids = loop.due(WEBHOOK, match={"job_id": job_id})
    return ids[0] if ids else None


def due_for_batch(batch_id: uuid.UUID) -> list[uuid.UUID]:
    """The finished batch's delivery, if it is due and no message is out for it yet."""
    return loop.due(WEBHOOK, match={"batch_id": batch_id})
