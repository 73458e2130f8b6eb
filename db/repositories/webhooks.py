"""Webhook delivery rows and users' signing secrets. The `jobs_record_webhook` trigger
inserts the rows; db.repositories.outbox moves them `pending → sending → delivered |
failed` (or back to `pending` for a retry)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models.user import User
from db.models.webhook import DELIVERED, WebhookAttempt, WebhookDelivery
from db.repositories.outbox import Table

LOST = "The worker stopped before recording an outcome; the request may have been sent."


def get(session: Session, *, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id)


def for_job(session: Session, *, job_id: uuid.UUID) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.created_at)
    )
    return list(session.scalars(query))


class _Deliveries(Table):
    """Webhook deliveries also keep the last status code, and a log row per attempt."""

    def recorded(self, status: str, now: Any, retry_in: float | None, **fields: Any) -> dict[str, Any]:
        return super().recorded(status, now, retry_in, **fields) | {
            "last_status_code": fields.get("status_code")
        }

    def lapsed(self, now: Any, spent: Any) -> dict[str, Any] | None:
        return super().lapsed(now, spent) | {"last_status_code": None}

    def log(self, session: Session, rows: Sequence[Any], error: str | None, **fields: Any) -> None:
        session.add_all(
            WebhookAttempt(
                delivery_id=delivery_id,
                attempt=attempt,
                status_code=fields.get("status_code"),
                error=error,
                duration_ms=fields.get("duration_ms"),
            )
            for delivery_id, attempt in rows
        )
        session.flush()


TABLE = _Deliveries(
    WebhookDelivery,
    done=DELIVERED,
    done_at="delivered_at",
    lost=LOST,
    first_attempt_at="first_attempt_at",
)


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
