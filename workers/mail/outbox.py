"""Queue an email: a row in the caller's transaction, sent after it commits.

    with session_scope() as session:                 # or the request's session
        ids = [enqueue(session, to=user.email, template="verify_email",
                       context={"name": user.name, "link": link},
                       dedupe_key=f"verify_email:{token_id}")]
    tasks.email.send_soon([i for i in ids if i])     # after the commit

The dedupe key names the event the email reports: the same key twice queues one
email, so a retried request or a duplicate Stripe event never emails twice. If
the transaction rolls back, so does the email.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from db.repositories import email_outbox
from settings import get_settings
from workers.mail import rendering
from workers.mail.rendering import MissingVariable, UnknownTemplate

__all__ = ["MissingVariable", "UnknownTemplate", "enqueue", "job_finished_key"]


def enqueue(
    session: Session, *, to: str, template: str, context: dict[str, Any], dedupe_key: str
) -> uuid.UUID | None:
    """Add an email to the session's transaction. Returns its id, or None when an
    email for `dedupe_key` is already queued (or sent). Raises UnknownTemplate or
    MissingVariable at once, rather than leaving an email that can never render."""
    rendering.check_name(template)
    stored = json.loads(json.dumps(context, default=_plain))
    rendering.render(template, stored, settings=get_settings())
    return email_outbox.insert_once(
        session, to_address=to, template=template, context=stored, dedupe_key=dedupe_key
    )


def job_finished_key(job_id: uuid.UUID) -> str:
    """The dedupe key of a job's `job_finished` email (the jobs_record_email trigger makes it)."""
    return f"job_finished:{job_id}"


def _plain(value: Any) -> Any:
    """Context values JSON has no type for, as the templates will show them."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"An email context value must be JSON (or a date or uuid), not {type(value).__name__}")
