"""The email outbox: one row per email to send, written in the transaction of the
event it reports, and sent by the `email` queue's workers.

`dedupe_key` names the event (`job_finished:<job id>`, `verify_email:<token id>`…):
a second row for the same event is refused, so no event is ever emailed twice.
Rows for finished jobs are inserted by the `jobs_record_email` trigger (migration
0003); every other row by `workers.mail.outbox.enqueue`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

PENDING = "pending"  # waiting for next_attempt_at
SENDING = "sending"  # a worker holds it until locked_until
SENT = "sent"
FAILED = "failed"  # a permanent error, or out of attempts
EMAIL_STATUSES = (PENDING, SENDING, SENT, FAILED)
OPEN = (PENDING, SENDING)

_status_list = ", ".join(f"'{status}'" for status in EMAIL_STATUSES)


class EmailOutbox(TimestampMixin, Base):
    __tablename__ = "email_outbox"
    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="status"),
        UniqueConstraint("dedupe_key", name="uq_email_outbox_dedupe_key"),
        # The sweep scans only emails that are still moving.
        Index(
            "ix_email_outbox_open",
            "status",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    to_address: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]]
    dedupe_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=PENDING, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # also the claim's fencing token
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(server_default=func.now())
    # sending: the worker's hold; pending: a message for it was sent and is still fresh.
    locked_until: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<EmailOutbox {self.id} {self.template} {self.status}>"
