"""Exports: a job's output as a document (md, json, pdf, docx), or all of a
user's data as a zip (`job_id` null). Built by the `exports` queue; the file is
in storage under `storage_key` and downloaded through a presigned URL."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
EXPORT_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
ACTIVE = (QUEUED, RUNNING)

JOB_FORMATS = ("md", "json", "pdf", "docx")
ACCOUNT_FORMAT = "zip"  # all of a user's data
FORMATS = (*JOB_FORMATS, ACCOUNT_FORMAT)

_status_list = ", ".join(f"'{status}'" for status in EXPORT_STATUSES)
_format_list = ", ".join(f"'{name}'" for name in FORMATS)


class Export(TimestampMixin, Base):
    __tablename__ = "exports"
    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="status"),
        CheckConstraint(f"format IN ({_format_list})", name="format"),
        # A job export names its job; the account export (zip) names none.
        CheckConstraint("(format = 'zip') = (job_id IS NULL)", name="job_or_account"),
        Index("ix_exports_user_created", "user_id", "created_at"),
        Index(
            "ix_exports_active",
            "status",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, server_default=QUEUED)
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    filename: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    @property
    def is_account_export(self) -> bool:
        return self.job_id is None

    def __repr__(self) -> str:
        return f"<Export {self.id} {self.format} {self.status}>"
