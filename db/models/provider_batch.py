"""A Batch made at the AI provider (its Batch API) by the batch lane (workers/batch_lane/).

Not a `batches` row (db/models/batch.py: jobs a client submitted together): this is the
provider's batch that the lane gathered held jobs into. Its jobs name it
(`jobs.provider_batch_id`); this row is what the beat follows until it is `closed`:
its results recorded, or it was cancelled because no job waits for it any more.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

OPEN = "open"  # the provider may still answer; the beat retrieves it every tick
CLOSED = "closed"


class ProviderBatch(Base):
    __tablename__ = "provider_batches"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'closed')", name="state"),
        Index("ix_provider_batches_open", "created_at", postgresql_where=text("state = 'open'")),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the provider's batch id
    model: Mapped[str] = mapped_column(String(128))
    input_file_id: Mapped[str] = mapped_column(String(128))
    jobs: Mapped[int]  # lines in its input file
    state: Mapped[str] = mapped_column(String(16), default=OPEN, server_default=OPEN)
    provider_status: Mapped[str] = mapped_column(String(32))  # as the provider last said
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    closed_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<ProviderBatch {self.id} {self.state} {self.provider_status}>"
