"""Webhook delivery rows, their state transitions, and users' signing secrets.

A delivery moves `pending → sending → delivered | failed`, or back to `pending`
for a retry. Each move is one compare-and-set UPDATE. `attempts` is bumped by
each claim and is the claim's fencing token: an outcome is recorded only by the
worker whose claim is still current, so a worker that stalled past its hold
cannot overwrite what a later attempt recorded.

The rows themselves are inserted by the `jobs_record_webhook` trigger.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from db.models.user import User
from db.models.webhook import DELIVERED, FAILED, PENDING, SENDING, WebhookAttempt, WebhookDelivery

LOST = "The worker stopped before recording an outcome; the request may have been sent."


def get(session: Session, *, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id)


def for_job(session: Session, *, job_id: uuid.UUID) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.created_at)
    )
    return list(session.scalars(query))


def mark_sent(
    session: Session, *, lease_seconds: int, job_id: uuid.UUID | None = None, limit: int = 500
) -> list[uuid.UUID]:
    """Due pending deliveries with no fresh message out for them (all, or the
    job's): mark a message as sent for `lease_seconds` and return their ids, so
    that a backed-up queue does not get one more message per sweep."""
    now = func.now()
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if job_id is not None:
        due = due.where(WebhookDelivery.job_id == job_id)
    rows = session.scalars(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due.scalar_subquery()))
        .values(locked_until=now + dt.timedelta(seconds=lease_seconds))
        .returning(WebhookDelivery.id)
    )
    return list(rows)


def release_lapsed(session: Session, *, max_age: int) -> int:
    """Deliveries whose worker died mid-attempt (held past `locked_until`): log the
    lost attempt and make them due again, or fail them once past `max_age`."""
    now = func.now()
    too_old = WebhookDelivery.first_attempt_at < now - dt.timedelta(seconds=max_age)
    rows = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == SENDING, WebhookDelivery.locked_until < now)
        .values(
            status=case((too_old, FAILED), else_=PENDING),
            next_attempt_at=case((too_old, None), else_=now),
            locked_until=None,
            last_status_code=None,
            last_error=LOST,
        )
        .returning(WebhookDelivery.id, WebhookDelivery.attempts)
    ).all()
    session.add_all(WebhookAttempt(delivery_id=row.id, attempt=row.attempts, error=LOST) for row in rows)
    return len(rows)


def claim(session: Session, *, delivery_id: uuid.UUID, hold_seconds: float) -> WebhookDelivery | None:
    """Take a due pending delivery for one attempt (pending → sending). None: it
    is not due, is held by another worker, or is finished."""
    now = func.now()
    return session.scalar(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(
            status=SENDING,
            attempts=WebhookDelivery.attempts + 1,
            locked_until=now + dt.timedelta(seconds=hold_seconds),
            first_attempt_at=func.coalesce(WebhookDelivery.first_attempt_at, now),
        )
        .returning(WebhookDelivery)
        .execution_options(populate_existing=True)
    )


def record_attempt(
    session: Session,
    *,
    delivery_id: uuid.UUID,
    attempt: int,
    status: str,
    status_code: int | None = None,
    error: str | None = None,
    duration_ms: int | None = None,
    retry_in: float | None = None,
) -> bool:
    """Log one attempt and move the delivery on: `delivered`, `failed`, or
    `pending` again in `retry_in` seconds. False: this claim is no longer current."""
    if status not in (DELIVERED, FAILED, PENDING):
        raise ValueError(f"{status!r} is not an outcome of an attempt")
    if (status == PENDING) != (retry_in is not None):
        raise ValueError("retry_in is required for a retry, and only for one")
    now = func.now()
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == SENDING,
            WebhookDelivery.attempts == attempt,
        )
        .values(
            status=status,
            locked_until=None,
            next_attempt_at=None if retry_in is None else now + dt.timedelta(seconds=retry_in),
            delivered_at=now if status == DELIVERED else None,
            last_status_code=status_code,
            last_error=error,
        )
    )
    if result.rowcount != 1:
        return False
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            attempt=attempt,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )
    session.flush()
    return True


# ---------------------------------------------------------------- secrets


def secret_of(session: Session, *, user_id: uuid.UUID, new_secret: str) -> str:
    """The user's webhook secret, set to `new_secret` if there is none yet (the
    first writer wins when the API and a worker both get there at once)."""
    session.execute(
        update(User)
        .where(User.id == user_id, User.webhook_secret.is_(None))
        .values(webhook_secret=new_secret)
    )
    return session.scalar(
        select(User.webhook_secret).where(User.id == user_id).execution_options(populate_existing=True)
    )


def replace_secret(session: Session, *, user_id: uuid.UUID, new_secret: str) -> str:
    session.execute(update(User).where(User.id == user_id).values(webhook_secret=new_secret))
    return new_secret
