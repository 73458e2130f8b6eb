"""Deliver a finished job's webhook: claim it, sign, POST once, record the attempt.

    pending ──claim──▶ sending ──2xx──────────────────────▶ delivered
       ▲                  │────URL refused by the guard───▶ failed
       │                  │────other answer, timeout, ────▶ failed (past WEBHOOK_MAX_AGE)
       └──retry (backoff)─┘    connection error
       └──sweep: the worker died (held past locked_until)

Every move is a compare-and-set in db/repositories/webhooks.py, so a duplicate
message or a second worker cannot send an attempt twice or overwrite an outcome.
The session is closed while the request is out.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
import uuid
from dataclasses import dataclass

from db.models.webhook import DELIVERED, FAILED, PENDING
from db.repositories import jobs, webhooks
from db.session import session_scope
from settings import Settings, get_settings
from workers import logs, metrics
from workers.webhooks import guard, payload, signing, transport

logger = logging.getLogger(__name__)

# Seconds before the retry after attempt n (then 8 h apart), each ±20 %, until
# WEBHOOK_MAX_AGE has passed since the first attempt.
RETRY_SCHEDULE = (10, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
JITTER = 0.2
# A due delivery gets at most one message this often, however backed up the queue is.
DISPATCH_LEASE = 60
# Beyond the request's own time limit, for the DNS lookup and a second address.
HOLD_MARGIN = 10
MAX_ERROR = 500


@dataclass(frozen=True)
class Outgoing:
    """One attempt, copied out of the session before it is closed."""

    delivery_id: uuid.UUID
    job_id: uuid.UUID
    attempt: int
    url: str
    body: str
    secret: str
    first_attempt_at: dt.datetime


def deliver(
    delivery_id: uuid.UUID, *, settings: Settings | None = None, resolve: guard.Resolve = socket.getaddrinfo
) -> str | None:
    """Make one attempt if the delivery is due. Returns the status it is left in,
    or None when this call did not attempt it (not due, held, or finished)."""
    settings = settings or get_settings()
    outgoing = _claim(delivery_id, settings)
    if outgoing is None:
        logger.info("delivery_id=%s not attempted: not due, held by another worker, or finished", delivery_id)
        return None
    try:
        # Checked again now: the address the host resolves to may have changed since submit.
        target = guard.check(outgoing.url, settings, resolve=resolve)
    except guard.Unresolvable as problem:
        return _record(outgoing, settings, error=str(problem), retry=True)
    except guard.UnsafeUrl as problem:
        return _record(outgoing, settings, error=f"Refused: {problem}.", retry=False)

    headers = signing.signed_headers(
        outgoing.secret, message_id=str(outgoing.delivery_id), body=outgoing.body
    )
    response = transport.post(
        target, body=outgoing.body.encode(), headers=headers, timeout=settings.webhook_timeout
    )
    code = response.status_code
    if code is not None and 200 <= code < 300:
        return _record(outgoing, settings, status_code=code, duration_ms=response.duration_ms, delivered=True)
    if code is None:
        error = response.error
    elif 300 <= code < 400:
        error = f"HTTP {code}: redirects are not followed (Location: {response.location or '-'})"
    else:
        error = f"HTTP {code}"
    return _record(
        outgoing, settings, status_code=code, error=error, duration_ms=response.duration_ms, retry=True
    )


def sweep(settings: Settings | None = None) -> list[uuid.UUID]:
    """Deliveries to send a message for now: due ones, and those whose worker died
    mid-attempt (their lost attempt is logged). Marked as sent for DISPATCH_LEASE."""
    settings = settings or get_settings()
    with session_scope() as session:
        lost = webhooks.release_lapsed(session, max_age=settings.webhook_max_age)
        due = webhooks.mark_sent(session, lease_seconds=DISPATCH_LEASE)
    if lost:
        logger.warning("webhooks: %s deliveries lost their worker mid-attempt; retrying", lost)
    return due


def due_for_job(job_id: uuid.UUID) -> uuid.UUID | None:
    """The finished job's delivery, if it is due and no message is out for it yet."""
    with session_scope() as session:
        ids = webhooks.mark_sent(session, lease_seconds=DISPATCH_LEASE, job_id=job_id)
    return ids[0] if ids else None


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), with jitter."""
    base = RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE)) - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter, not a secret


def _claim(delivery_id: uuid.UUID, settings: Settings) -> Outgoing | None:
    with session_scope() as session:
        delivery = webhooks.claim(
            session, delivery_id=delivery_id, hold_seconds=2 * settings.webhook_timeout + HOLD_MARGIN
        )
        if delivery is None:
            return None
        job = jobs.get(session, job_id=delivery.job_id)
        # This attempt's log lines belong to the job, and to the request that submitted it.
        logs.bind(job_id=delivery.job_id, request_id=job.request_id if job is not None else None)
        secret = webhooks.secret_of(session, user_id=delivery.user_id, new_secret=signing.new_secret())
        return Outgoing(
            delivery_id=delivery.id,
            job_id=delivery.job_id,
            attempt=delivery.attempts,
            url=delivery.url,
            body=payload.body(event=delivery.event, occurred_at=delivery.created_at, job=job),
            secret=secret,
            first_attempt_at=delivery.first_attempt_at,
        )


def _record(
    outgoing: Outgoing,
    settings: Settings,
    *,
    status_code: int | None = None,
    error: str | None = None,
    duration_ms: int | None = None,
    delivered: bool = False,
    retry: bool = False,
) -> str | None:
    retry_in = None
    if delivered:
        status = DELIVERED
    elif retry:
        retry_in = retry_delay(outgoing.attempt)
        deadline = outgoing.first_attempt_at + dt.timedelta(seconds=settings.webhook_max_age)
        if dt.datetime.now(dt.UTC) + dt.timedelta(seconds=retry_in) > deadline:
            status, retry_in = FAILED, None
            error = f"{error}; giving up after {outgoing.attempt} attempts over {settings.webhook_max_age} s"
        else:
            status = PENDING
    else:
        status = FAILED
    with session_scope() as session:
        recorded = webhooks.record_attempt(
            session,
            delivery_id=outgoing.delivery_id,
            attempt=outgoing.attempt,
            status=status,
            status_code=status_code,
            error=_short(error),
            duration_ms=duration_ms,
            retry_in=retry_in,
        )
    if not recorded:
        logger.warning(
            "delivery_id=%s attempt=%s outcome dropped: its hold lapsed and the sweep took it back",
            outgoing.delivery_id,
            outgoing.attempt,
        )
        return None
    metrics.webhook_delivery(status)
    log = logger.info if status == DELIVERED else logger.warning
    log(
        "delivery_id=%s job_id=%s attempt=%s %s code=%s error=%s",
        outgoing.delivery_id,
        outgoing.job_id,
        outgoing.attempt,
        status,
        status_code,
        error,
    )
    return status


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_ERROR:
        return text
    return text[: MAX_ERROR - 1] + "…"
