"""Send one outbox email: claim it, render, hand it to the transport, record the outcome.

    pending ──claim──▶ sending ──accepted─────────────────────▶ sent
       ▲                  │────5xx, bad address, bad template─▶ failed
       │                  │────4xx, no connection, dropped ───▶ failed (after MAX_ATTEMPTS)
       └──retry (backoff)─┘
       └──sweep: the worker died (held past locked_until)

Every move is a compare-and-set in db/repositories/email_outbox.py, so a duplicate
message or a second worker cannot send an attempt twice or overwrite an outcome.
A worker that dies after the server accepted the message but before recording it
leaves the one case that can send twice (at-least-once, like any mail queue); the
Message-ID stays the same on every attempt so mail clients can fold the copies.
The session is closed while the SMTP conversation runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from db.models.email import FAILED, PENDING, SENT
from db.repositories import email_outbox
from db.session import session_scope
from settings import Settings, get_settings
from workers import metrics
from workers.mail import outbox, rendering, transport

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE = 30.0  # seconds before the first retry, doubling after each attempt …
BACKOFF_MAX = 3600.0  # … up to an hour; about an hour from the first attempt to the last
JITTER = 0.2
# A due email gets at most one message this often, however backed up the queue is.
DISPATCH_LEASE = 60
# Beyond the transport's socket timeout: connect, EHLO, STARTTLS, AUTH and DATA each get one.
HOLD_MARGIN = 30
MAX_ERROR = 500


@dataclass(frozen=True)
class Outgoing:
    """One attempt, copied out of the session before it is closed."""

    outbox_id: uuid.UUID
    attempt: int
    to_address: str
    template: str
    context: dict[str, Any]
    created_at: dt.datetime


def send(
    outbox_id: uuid.UUID, *, settings: Settings | None = None, via: transport.Transport | None = None
) -> str | None:
    """Make one attempt if the email is due. Returns the status it is left in, or
    None when this call did not attempt it (not due, held, or finished)."""
    settings = settings or get_settings()
    via = via or transport.from_url(settings.mail_url)
    outgoing = _claim(outbox_id, hold_seconds=2 * via.timeout + HOLD_MARGIN)
    if outgoing is None:
        logger.info("outbox_id=%s not attempted: not due, held by another worker, or finished", outbox_id)
        return None
    try:
        via.send(build_message(outgoing, settings))
    except (transport.PermanentError, rendering.UnknownTemplate, rendering.MissingVariable) as error:
        return _record(outgoing, FAILED, error=str(error))
    except transport.TransientError as error:
        return _record(outgoing, PENDING, error=str(error))
    except Exception as error:
        # Not known to be transient: record it and let Celery log the traceback.
        _record(outgoing, FAILED, error=f"{type(error).__name__}: {error}")
        raise
    return _record(outgoing, SENT)


def build_message(outgoing: Outgoing, settings: Settings) -> EmailMessage:
    rendered = rendering.render(outgoing.template, outgoing.context, settings=settings)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = _address(outgoing.to_address)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(outgoing.created_at)
    message["Message-ID"] = f"<{outgoing.outbox_id}@{_domain(settings.mail_from)}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies, please
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def sweep() -> list[uuid.UUID]:
    """Emails to send a message for now: due ones, and those whose worker died
    mid-attempt. Marked as sent for DISPATCH_LEASE."""
    with session_scope() as session:
        lost = email_outbox.release_lapsed(session, max_attempts=MAX_ATTEMPTS)
        due = email_outbox.mark_dispatched(session, lease_seconds=DISPATCH_LEASE)
    if lost:
        logger.warning("email: %s emails lost their worker mid-attempt; retrying", lost)
    return due


def due_among(outbox_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of `outbox_ids` that are due with no fresh message out for them."""
    if not outbox_ids:
        return []
    with session_scope() as session:
        return email_outbox.mark_dispatched(session, lease_seconds=DISPATCH_LEASE, ids=outbox_ids)


def due_for_job(job_id: uuid.UUID) -> list[uuid.UUID]:
    """The finished job's email, if it asked for one and it is due."""
    with session_scope() as session:
        row = email_outbox.by_dedupe_key(session, dedupe_key=outbox.job_finished_key(job_id))
    return due_among([row.id]) if row is not None else []


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), with jitter."""
    base = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
    return base * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter, not a secret


def _claim(outbox_id: uuid.UUID, *, hold_seconds: float) -> Outgoing | None:
    with session_scope() as session:
        row = email_outbox.claim(session, outbox_id=outbox_id, hold_seconds=hold_seconds)
        if row is None:
            return None
        return Outgoing(
            outbox_id=row.id,
            attempt=row.attempts,
            to_address=row.to_address,
            template=row.template,
            context=dict(row.context),
            created_at=row.created_at,
        )


def _record(outgoing: Outgoing, status: str, *, error: str | None = None) -> str | None:
    retry_in = None
    if status == PENDING:
        if outgoing.attempt >= MAX_ATTEMPTS:
            status, error = FAILED, f"{error}; gave up after {outgoing.attempt} attempts"
        else:
            retry_in = retry_delay(outgoing.attempt)
    with session_scope() as session:
        recorded = email_outbox.record(
            session,
            outbox_id=outgoing.outbox_id,
            attempt=outgoing.attempt,
            status=status,
            error=_short(error),
            retry_in=retry_in,
        )
    if not recorded:
        logger.warning(
            "outbox_id=%s attempt=%s outcome dropped: the claim lapsed (the sweep took it back) "
            "or the row is gone",
            outgoing.outbox_id,
            outgoing.attempt,
        )
        return None
    metrics.email_delivery(status)
    log = logger.info if status == SENT else logger.warning
    log(
        "outbox_id=%s template=%s attempt=%s %s%s",
        outgoing.outbox_id,
        outgoing.template,
        outgoing.attempt,
        status,
        f" error={error}" if error else "",
    )
    return status


def _address(text: str) -> Address:
    """The recipient as one checked address: anything else fails the email for good."""
    try:
        address = Address(addr_spec=text)
    except Exception as error:  # the parser raises several kinds, all meaning "not an address"
        raise transport.PermanentError(f"{text!r} is not an email address ({error})") from None
    if not address.username or not address.domain:
        raise transport.PermanentError(f"{text!r} is not an email address")
    return address


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_ERROR:
        return text
    return text[: MAX_ERROR - 1] + "…"
