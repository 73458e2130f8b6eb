"""Everything one user has, read for their data export (oldest first)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models.job import Job
from db.models.usage import UsageLedger


def jobs_of(session: Session, *, user_id: uuid.UUID) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.user_id == user_id).order_by(Job.created_at, Job.id)))


def usage_calls_of(session: Session, *, user_id: uuid.UUID) -> list[UsageLedger]:
    query = select(UsageLedger).where(UsageLedger.user_id == user_id).order_by(UsageLedger.id)
    return list(session.scalars(query))
