"""An admin's bulk action on many jobs (retry, cancel, purge): what it matched, how far
it got. A small one runs inside its request; a large one in a task, which updates the
row as it goes so GET /admin/operations/<id> shows its progress.

The task works through the matched jobs in (created_at, id) order and records the last
one it finished with its counts, so a run that died is resumed from there by the next
(workers/bulk_operations.py). `lease_until` is how long the running one may go without
recording progress before it is presumed dead."""

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

MAX_JOBS = 100_000  # the most jobs one operation may act on (a request's `max`)

QUEUED = "queued"  # its task was sent and has not started
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
OPERATION_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
UNFINISHED = (QUEUED, RUNNING)

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
    failed: Mapped[int] = mapped_column(default=0, server_default="0")  # an error acting on it (the store)
    # Where a task is: the last job it finished, and until when its run is presumed alive.
    last_created_at: Mapped[dt.datetime | None]
    last_job_id: Mapped[uuid.UUID | None]
    lease_until: Mapped[dt.datetime | None]
    resumes: Mapped[int] = mapped_column(default=0, server_default="0")  # times found stalled and re-sent
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<BulkOperation {self.id} {self.action} {self.status}>"
