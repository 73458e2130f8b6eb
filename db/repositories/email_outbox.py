"""Email outbox rows and their state transitions.

An email moves `pending → sending → sent | failed`, or back to `pending` for a
retry. Each move is one compare-and-set UPDATE. `attempts` is bumped by each
claim and is the claim's fencing token: an outcome is recorded only by the worker
whose claim is still current, so a worker that stalled past its hold cannot
overwrite what a later attempt recorded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.email import FAILED, PENDING, SENDING, SENT, EmailOutbox

LOST = "The worker stopped before recording an outcome; the email may have been sent."


def insert_once(
    session: Session, *, to_address: str, template: str, context: dict[str, Any], dedupe_key: str
) -> uuid.UUID | None:
    """Add an email to the caller's transaction; None when one for `dedupe_key` exists."""
    return session.scalar(
        insert(EmailOutbox)
        .values(
            id=uuid.uuid4(), to_address=to_address, template=template, context=context, dedupe_key=dedupe_key
        )
        .on_conflict_do_nothing(index_elements=[EmailOutbox.dedupe_key])
        .returning(EmailOutbox.id)
    )


def get(session: Session, *, outbox_id: uuid.UUID) -> EmailOutbox | None:
    return session.get(EmailOutbox, outbox_id)


def by_dedupe_key(session: Session, *, dedupe_key: str) -> EmailOutbox | None:
    return session.scalar(select(EmailOutbox).where(EmailOutbox.dedupe_key == dedupe_key))


def mark_dispatched(
    session: Session, *, lease_seconds: int, ids: Sequence[uuid.UUID] | None = None, limit: int = 500
) -> list[uuid.UUID]:
    """Due pending emails with no fresh message out for them (all, or those in
    `ids`): mark a message as sent for `lease_seconds` and return their ids, so
    that a backed-up queue does not get one more message per sweep."""
    now = func.now()
    due = (
        select(EmailOutbox.id)
        .where(
            EmailOutbox.status == PENDING,
            EmailOutbox.next_attempt_at <= now,
            or_(EmailOutbox.locked_until.is_(None), EmailOutbox.locked_until < now),
        )
        .order_by(EmailOutbox.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        due = due.where(EmailOutbox.id.in_(list(ids)))
    rows = session.scalars(
        update(EmailOutbox)
        .where(EmailOutbox.id.in_(due.scalar_subquery()))
        .values(locked_until=now + dt.timedelta(seconds=lease_seconds))
        .returning(EmailOutbox.id)
    )
    return list(rows)


def release_lapsed(session: Session, *, max_attempts: int) -> int:
    """Emails whose worker died mid-attempt (held past `locked_until`): due again,
    or failed once they have used `max_attempts`."""
    now = func.now()
    spent = EmailOutbox.attempts >= max_attempts
    result = session.execute(
        update(EmailOutbox)
        .where(EmailOutbox.status == SENDING, EmailOutbox.locked_until < now)
        .values(
            status=case((spent, FAILED), else_=PENDING),
            next_attempt_at=case((spent, None), else_=now),
            locked_until=None,
            last_error=LOST,
        )
    )
    return result.rowcount


def claim(session: Session, *, outbox_id: uuid.UUID, hold_seconds: float) -> EmailOutbox | None:
    """Take a due pending email for one attempt (pending → sending). None: it is
    not due, is held by another worker, or is finished."""
    now = func.now()
    return session.scalar(
        update(EmailOutbox)
        .where(
            EmailOutbox.id == outbox_id,
            EmailOutbox.status == PENDING,
            EmailOutbox.next_attempt_at <= now,
        )
        .values(
            status=SENDING,
            attempts=EmailOutbox.attempts + 1,
            locked_until=now + dt.timedelta(seconds=hold_seconds),
        )
        .returning(EmailOutbox)
        .execution_options(populate_existing=True)
    )


def record(
    session: Session,
    *,
    outbox_id: uuid.UUID,
    attempt: int,
    status: str,
    error: str | None = None,
    retry_in: float | None = None,
) -> bool:
    """Move a claimed email on: `sent`, `failed`, or `pending` again in `retry_in`
    seconds. False: this claim is no longer current."""
    if status not in (SENT, FAILED, PENDING):
        raise ValueError(f"{status!r} is not an outcome of an attempt")
    if (status == PENDING) != (retry_in is not None):
        raise ValueError("retry_in is required for a retry, and only for one")
    now = func.now()
    result = session.execute(
        update(EmailOutbox)
        .where(
            EmailOutbox.id == outbox_id,
            EmailOutbox.status == SENDING,
            EmailOutbox.attempts == attempt,
        )
        .values(
            status=status,
            locked_until=None,
            next_attempt_at=None if retry_in is None else now + dt.timedelta(seconds=retry_in),
            sent_at=now if status == SENT else None,
            last_error=error,
        )
    )
    return result.rowcount == 1
