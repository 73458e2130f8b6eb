"""A batch: jobs submitted together (POST /jobs/batch), followed and canceled as one.

Its counts are read from its jobs (`jobs.batch_id`), not kept here. `finished_at` is set
by the `batch_finish_if_done` function (migration 0012) in the transaction that ends the
batch's last unfinished job, which also records its `batch.finished` webhook.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

MAX_JOBS = 500  # jobs a batch request may carry


class Batch(TimestampMixin, Base):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_user_created", "user_id", text("created_at DESC"), text("id DESC")),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<Batch {self.id}>"
