from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    FetchedValue,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

SCHEDULED = "scheduled"  # `run_at` is in the future; workers/scheduled_jobs.py queues it when due
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
EXPIRED = "expired"
STATUSES = (SCHEDULED, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED, EXPIRED)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELED, EXPIRED)
RATINGS = ("up", "down")  # a job's feedback from its owner
# How a call is sold (workers/catalogue.py prices each): the lane of a job and of a ledger row.
STANDARD = "standard"  # run by a worker as soon as it is admitted
FLEX = "flex"  # OpenAI's cheaper, slower `service_tier: "flex"` (workers/lanes.py)
BATCH = "batch"  # held `scheduled` and sent through the provider's Batch API (workers/batch_lane/)
LANES = (STANDARD, FLEX, BATCH)

_status_list = ", ".join(f"'{status}'" for status in STATUSES)


class Job(TimestampMixin, Base):
    """One unit of AI work. This row, not Celery, is the source of truth."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        CheckConstraint("feedback_rating IN ('up', 'down')", name="feedback_rating"),
        UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency_key"),
        Index("ix_jobs_user_created", "user_id", text("created_at DESC"), text("id DESC")),
        # The job-recovery tasks (tasks/job_recovery.py) scan only jobs that are still moving.
        Index(
            "ix_jobs_active", "status", "created_at", postgresql_where=text("status IN ('queued', 'running')")
        ),
        # Admission counts a user's jobs in flight and waiting on every submit.
        Index("ix_jobs_user_active", "user_id", postgresql_where=text("status IN ('queued', 'running')")),
        # The due-job pickup (workers/scheduled_jobs.py) looks for due rows every second.
        Index("ix_jobs_scheduled", "run_at", postgresql_where=text("status = 'scheduled'")),
        # The batch lane's beat gathers and takes out held jobs (workers/batch_lane/).
        Index(
            "ix_jobs_held_for_batch",
            "deadline",
            postgresql_where=text("status = 'scheduled' AND lane = 'batch'"),
        ),
        # A batch's jobs, in the order they were submitted (GET /batches/<id>).
        Index("ix_jobs_batch", "batch_id", "batch_index", postgresql_where=text("batch_id IS NOT NULL")),
        # The retention sweep scans only finished jobs that still hold an output.
        Index(
            "ix_jobs_retention",
            "finished_at",
            postgresql_where=text("output IS NOT NULL OR output_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tool: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, server_default=QUEUED)
    input: Mapped[dict[str, Any]]
    output: Mapped[dict[str, Any] | None]
    output_key: Mapped[str | None] = mapped_column(String(1024))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(default=0, server_default="0")
    model: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(default=0, server_default="0")
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    # Email the owner when it finishes (the `jobs_record_email` trigger, migration 0003).
    notify_email: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    input_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Tokens held against the monthly quota from submit until the job ends (see db/models/usage.py).
    reserved_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime]  # not started by then: `expired`
    run_at: Mapped[dt.datetime | None]  # a scheduled job is queued at this time
    lease_until: Mapped[dt.datetime | None]  # a running job's worker holds it until then
    dispatched_at: Mapped[dt.datetime | None]  # when its message last went to the broker
    cancel_requested_at: Mapped[dt.datetime | None]
    # The request that submitted it, so its worker's log lines carry that request id.
    request_id: Mapped[str | None] = mapped_column(String(128))
    # The failed job an admin retried to make this one; a job is retried at most once
    # (retry the newest of the chain), so a double click cannot pay for two runs.
    retry_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True
    )
    # For the batch lane (`lane` below is `batch`): when it must be finished by, and the
    # provider batch it was sent in (not `batch_id`: that is POST /jobs/batch's).
    deadline: Mapped[dt.datetime | None]
    provider_batch_id: Mapped[str | None] = mapped_column(String(128))
    # The batch it was submitted in (POST /jobs/batch), and its place in the request.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"))
    batch_index: Mapped[int | None]
    # The owner's one feedback on the job (PUT /jobs/<id>/feedback), replaced when they change it.
    feedback_rating: Mapped[str | None] = mapped_column(String(8))
    feedback_comment: Mapped[str | None] = mapped_column(Text)
    feedback_at: Mapped[dt.datetime | None]
    # The lane asked for at submit (None: standard; "flex"), and how the job runs: `lane`
    # is `batch` while it is held for the batch lane, then the lane of its answering call
    # (None: not run yet); the model that answered, and each model tried, in order
    # ({model, outcome, error_code}: workers/fallbacks.py).
    service_tier: Mapped[str | None] = mapped_column(String(16))
    lane: Mapped[str | None] = mapped_column(String(16))
    answered_by: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    # The submit's `cache` choice (workers/response_cache.py): whether the worker may
    # store the answer; and whether the job was answered from the cache at submit.
    cache_mode: Mapped[str] = mapped_column(String(8), default="default", server_default="default")
    cached: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Postgres's row version: it changes with every committed UPDATE of the row, so it is
    # what the job's ETag is made of (api/resources/jobs.py). Read-only; not a real column.
    xmin: Mapped[str] = mapped_column(String, system=True, server_default=FetchedValue())

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.tool} {self.status}>"


# The admin API pages through every user's jobs, newest first.
Index("ix_jobs_created", Job.created_at.desc(), Job.id.desc())
