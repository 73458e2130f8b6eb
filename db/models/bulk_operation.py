"""An admin's bulk action on many jobs (retry, cancel, purge): what it matched, how far
it got. A small one runs inside its request; a large one in a task, which updates the
row as it goes so GET /admin/operations/<id> shows its progress."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

RETRY = "retry"
CANCEL = "cancel"
PURGE = "purge"
ACTIONS = (RETRY, CANCEL, PURGE)

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
OPERATION_STATUSES = (RUNNING, SUCCEEDED, FAILED)

_action_list = ", ".join(f"'{action}'" for action in ACTIONS)
_status_list = ", ".join(f"'{status}'" for status in OPERATION_STATUSES)


class BulkOperation(TimestampMixin, Base):
    __tablename__ = "bulk_operations"
    __table_args__ = (
        CheckConstraint(f"action IN ({_action_list})", name="action"),
        CheckConstraint(f"status IN ({_status_list})", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RUNNING, server_default=RUNNING)
    # The filter as the admin sent it (the audit entry has the same).
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(320))
    matched: Mapped[int] = mapped_column(default=0, server_default="0")  # jobs the filter chose
    done: Mapped[int] = mapped_column(default=0, server_default="0")  # retried, canceled or purged
    skipped: Mapped[int] = mapped_column(default=0, server_default="0")  # no longer eligible when reached
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<BulkOperation {self.id} {self.action} {self.status}>"
