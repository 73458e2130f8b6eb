"""Webhook deliveries: an outbox row per finished job, and a log of its attempts.

The rows are written by the `jobs_record_webhook` trigger (migration 0002) in the
same transaction that finishes the job, so every path that ends a job (worker,
reaper, cancel, expiry) records exactly one delivery and none can be lost.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base, TimestampMixin

PENDING = "pending"  # waiting for next_attempt_at
SENDING = "sending"  # a worker holds it until locked_until
DELIVERED = "delivered"
FAILED = "failed"  # given up: too old, or the URL is refused
DELIVERY_STATUSES = (PENDING, SENDING, DELIVERED, FAILED)
OPEN = (PENDING, SENDING)

_status_list = ", ".join(f"'{status}'" for status in DELIVERY_STATUSES)


class WebhookDelivery(TimestampMixin, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="status"),
        UniqueConstraint("job_id", name="uq_webhook_deliveries_job_id"),  # one terminal event per job
        UniqueConstraint("batch_id", name="uq_webhook_deliveries_batch_id"),  # one batch.finished
        CheckConstraint("(job_id IS NULL) <> (batch_id IS NULL)", name="job_or_batch"),
        # The sweep scans only deliveries that are still moving.
        Index(
            "ix_webhook_deliveries_open",
            "status",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    # A batch's `batch.finished` (migration 0012) instead of a job's event.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))  # job.succeeded, job.failed, …, batch.finished
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")  # also the claim's fencing token
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(server_default=func.now())
    # sending: the worker's hold; pending: a message for it was sent and is still fresh.
    locked_until: Mapped[dt.datetime | None]
    first_attempt_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None]

    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.attempt", lazy="selectin", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<WebhookDelivery {self.id} job={self.job_id} batch={self.batch_id} {self.status}>"


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None]

    def __repr__(self) -> str:
        return f"<WebhookAttempt {self.delivery_id} #{self.attempt} {self.status_code or self.error}>"
