"""The response cache (workers/response_cache.py): answers that may be served again,
and each submit's look-up in it, hit or miss, with what a hit saved.

Entries live in Postgres rather than Redis: they survive a restart (this deployment's
Redis keeps nothing on disk), a hit is decided and its job finished in one transaction,
and an admin purges by tool or user with an indexed DELETE.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class ResponseCacheEntry(Base):
    """One answer, under the hash of the request that produced it. `user_id` is None
    for a tool that is not personalised (the answer is shared across users)."""

    __tablename__ = "response_cache"
    __table_args__ = (
        Index("ix_response_cache_expires", "expires_at"),
        Index("ix_response_cache_tool", "tool"),
        Index("ix_response_cache_user", "user_id"),
        Index("ix_response_cache_source_job", "source_job_id"),  # deleting the job takes its answer
    )

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256, hex
    tool: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(128))
    output: Mapped[dict[str, Any]]
    # What producing the answer cost: what each hit saves.
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    source_job_id: Mapped[uuid.UUID]  # no foreign key: the entry may outlive its job
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime]


class ResponseCacheLookup(Base):
    """A submit that looked in the cache: a hit (with what it saved) or a miss. Kept
    apart from the job, like the usage ledger, so the savings outlive a deleted job."""

    __tablename__ = "response_cache_lookups"
    __table_args__ = (
        Index("ix_response_cache_lookups_user_created", "user_id", "created_at"),
        Index("ix_response_cache_lookups_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tool: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    hit: Mapped[bool]
    saved_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    saved_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    saved_cost_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
