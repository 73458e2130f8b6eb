"""Email outbox rows: queued once per event, then moved `pending → sending → sent |
failed` (or back to `pending` for a retry) by db.repositories.outbox."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.email import SENT, EmailOutbox
from db.repositories.outbox import Table

LOST = "The worker stopped before recording an outcome; the email may have been sent."

TABLE = Table(
    EmailOutbox,
    done=SENT,
    done_at="sent_at",
    lost=LOST,
)


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
