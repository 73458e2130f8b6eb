"""Quota counters, the usage ledger and its daily roll-up.

Counters: `usage_counters` holds each user's tokens used and reserved in a month
(UTC); `daily_job_counts` the jobs they submitted each day. A submit reserves its
estimate with a compare-and-set UPDATE; the `jobs_settle_usage` trigger (migration
0005) replaces the reservation with the billed tokens in the transaction that
finishes the job, whoever finishes it.

Ledger: one row per provider call, written in the transaction that records the
job's outcome; `billed` marks the calls of the attempt that finished the job with
a result (succeeded, or canceled with partial output). Rows are never changed,
except `rolled_up`, which the roll-up sets once it has counted the row.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class UsageCounter(Base):
    __tablename__ = "usage_counters"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[dt.date] = mapped_column(primary_key=True)  # the first day of the month (UTC)
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tokens_reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class DailyJobCount(Base):
    __tablename__ = "daily_job_counts"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)  # UTC
    jobs: Mapped[int] = mapped_column(default=0, server_default="0")


class UsageLedger(Base):
    __tablename__ = "usage_ledger"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt", "call_index", name="uq_usage_ledger_job_attempt_call"),
        Index("ix_usage_ledger_user_created", "user_id", "created_at"),
        Index("ix_usage_ledger_created", "created_at"),  # the admin stats read a time range
        Index("ix_usage_ledger_pending_rollup", "id", postgresql_where=text("NOT rolled_up")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # No foreign key: the books outlive a job deleted under the retention policy.
    job_id: Mapped[uuid.UUID]
    attempt: Mapped[int]
    call_index: Mapped[int]  # 0 for the first provider call of the attempt, 1 for a repair…
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tool: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    billed: Mapped[bool]
    # standard, or batch (priced at the provider's batch rate: workers/batch_lane/pricing.py)
    lane: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    rolled_up: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class UsageDaily(Base):
    """The ledger summed per user, UTC day, tool, model and billed-or-not."""

    __tablename__ = "usage_daily"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    tool: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    billed: Mapped[bool] = mapped_column(primary_key=True)
    calls: Mapped[int]
    jobs: Mapped[int]
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
