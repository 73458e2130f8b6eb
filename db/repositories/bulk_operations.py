"""Admin bulk operations: the jobs a filter chooses, and the operation's row."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models.bulk_operation import BulkOperation
from db.models.job import TERMINAL, Job


def matching(
    session: Session,
    *,
    user_id: uuid.UUID | None = None,
    statuses: Sequence[str] = (),
    tool: str | None = None,
    error_code: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    finished_before: dt.datetime | None = None,
    limit: int,
) -> tuple[int, list[uuid.UUID]]:
    """How many jobs the filter matches, and the ids of up to `limit` of them, oldest first
    (the filters of GET /admin/jobs, an error code, and for a purge finished before a time)."""
    where = []
    if user_id is not None:
        where.append(Job.user_id == user_id)
    if statuses:
        where.append(Job.status.in_(statuses))
    if tool:
        where.append(Job.tool == tool)
    if error_code:
        where.append(Job.error_code == error_code)
    if created_from is not None:
        where.append(Job.created_at >= created_from)
    if created_to is not None:
        where.append(Job.created_at < created_to)
    if finished_before is not None:
        where += [Job.status.in_(TERMINAL), Job.finished_at < finished_before]
    count = session.scalar(select(func.count()).select_from(Job).where(*where))
    ids = session.scalars(select(Job.id).where(*where).order_by(Job.created_at, Job.id).limit(limit))
    return count, list(ids)


def create(session: Session, **fields: Any) -> BulkOperation:
    operation = BulkOperation(**fields)
    session.add(operation)
    session.flush()
    return operation


def get(session: Session, *, operation_id: uuid.UUID) -> BulkOperation | None:
    return session.get(BulkOperation, operation_id)
