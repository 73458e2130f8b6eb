"""Send one outbox email through the outbox loop (workers.outbox): render it and
hand it to the transport (SMTP or the console).

A 5xx reply, a bad address or a bad template fails the email at once; a 4xx reply,
no connection or a dropped one is retried with backoff until MAX_ATTEMPTS. The
Message-ID stays the same on every attempt so mail clients can fold the copies
an at-least-once send can make.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
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
from workers import outbox as loop
from workers.mail import outbox, rendering, transport

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Doubling from 30 seconds, up to an hour apart.
RETRIES = loop.Retries(
    schedule=tuple(min(30 * 2**n, 3600) for n in range(MAX_ATTEMPTS)), max_attempts=MAX_ATTEMPTS
)
# Beyond the transport's socket timeout: connect, EHLO, STARTTLS, AUTH and DATA each get one.
HOLD_MARGIN = 30


@dataclass(frozen=True)
class Outgoing:
    """One email, copied out of the session before it is closed."""

    outbox_id: uuid.UUID
    to_address: str
    template: str
    context: dict[str, Any]
    created_at: dt.datetime


EMAIL = loop.Kind(
    logger=logger,
    name="email",
    table=email_outbox.TABLE,
    id_name="outbox_id",
    load=lambda session, row: Outgoing(
        row.id, row.to_address, row.template, dict(row.context), row.created_at
    ),
    retries=RETRIES,
    labels=lambda email: {"template": email.template},
    metric=metrics.email_delivery,
    unexpected=FAILED,
)


def send(
    outbox_id: uuid.UUID, *, settings: Settings | None = None, via: transport.Transport | None = None
) -> str | None:
    """Make one attempt if the email is due. Returns the status it is left in, or
    None when this call did not attempt it (not due, held, or finished)."""
    settings = settings or get_settings()
    via = via or transport.from_url(settings.mail_url)
    send_one = functools.partial(_send, settings=settings, via=via)
    result = loop.attempt(EMAIL, outbox_id, hold_seconds=2 * via.timeout + HOLD_MARGIN, transport=send_one)
    return result.status if result else None


def _send(claim: loop.Claim, *, settings: Settings, via: transport.Transport) -> loop.Result:
    try:
        via.send(build_message(claim.item, settings))
    except (transport.PermanentError, rendering.UnknownTemplate, rendering.MissingVariable) as error:
        return loop.Result(FAILED, error=str(error))
    except transport.TransientError as error:
        return loop.Result(PENDING, error=str(error))
    return loop.Result(SENT)


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
    """Emails to send a message for now: due ones, and those whose worker died mid-attempt."""
    return loop.sweep(EMAIL)


def due_among(outbox_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of `outbox_ids` that are due with no fresh message out for them."""
    return loop.due(EMAIL, ids=outbox_ids) if outbox_ids else []


def due_for_job(job_id: uuid.UUID) -> list[uuid.UUID]:
    """The finished job's email, if it asked for one and it is due."""
    with session_scope() as session:
        row = email_outbox.by_dedupe_key(session, dedupe_key=outbox.job_finished_key(job_id))
    return due_among([row.id]) if row is not None else []


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
