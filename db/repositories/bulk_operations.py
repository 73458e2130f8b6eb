"""Admin bulk operations: the jobs a filter chooses, and the operation's row (its
counts, and the lease of the task working through it)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.models.bulk_operation import UNFINISHED, BulkOperation
from db.models.job import TERMINAL, Job


def matching(session: Session, **criteria: Any) -> int:
    """How many jobs the filter matches (see `chunk` for the filter)."""
    return session.scalar(select(func.count()).select_from(Job).where(*_where(**criteria)))


def chunk(
    session: Session,
    *,
    after: tuple[dt.datetime, uuid.UUID] | None,
    created_until: dt.datetime,
    limit: int,
    **criteria: Any,
) -> list[tuple[uuid.UUID, dt.datetime]]:
    """The next (id, created_at) of up to `limit` matching jobs, oldest first, past `after`
    and made no later than `created_until` (the operation: its own retries are not in it).
    The filter is that of GET /admin/jobs, an error code, and for a purge finished before
    a time."""
    where = [*_where(**criteria), Job.created_at <= created_until]
    if after is not None:
        created_at, job_id = after
        where.append(or_(Job.created_at > created_at, and_(Job.created_at == created_at, Job.id > job_id)))
    query = select(Job.id, Job.created_at).where(*where).order_by(Job.created_at, Job.id).limit(limit)
    return [(row.id, row.created_at) for row in session.execute(query)]


def _where(
    *,
    user_id: uuid.UUID | None = None,
    statuses: Sequence[str] = (),
    tool: str | None = None,
    error_code: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    finished_before: dt.datetime | None = None,
) -> list[Any]:
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
    return where


def create(session: Session, **fields: Any) -> BulkOperation:
    operation = BulkOperation(**fields)
    session.add(operation)
    session.flush()
    return operation


def get(session: Session, *, operation_id: uuid.UUID) -> BulkOperation | None:
    return session.get(BulkOperation, operation_id)


def claim(session: Session, *, operation_id: uuid.UUID, lease_seconds: float) -> dt.datetime | None:
    """Take the unfinished operation for one run, unless a live run holds it: its lease's
    end (the token every later write of the run must show), or None."""
    return session.scalar(
        update(BulkOperation)
        .where(
            BulkOperation.id == operation_id,
            BulkOperation.status.in_(UNFINISHED),
            or_(BulkOperation.lease_until.is_(None), BulkOperation.lease_until < func.now()),
        )
        .values(status="running", lease_until=_lease_end(lease_seconds))
        .returning(BulkOperation.lease_until)
        .execution_options(synchronize_session=False)
    )


def record(
    session: Session, *, operation_id: uuid.UUID, lease: dt.datetime, renew: float | None, **fields: Any
) -> dt.datetime | None:
    """Write the run's progress (counts, where it got to, perhaps its end) if it still holds
    the lease; renew the lease by `renew` seconds, or release it (None). The new token, the
    old one when released, or None when the lease was lost."""
    row = session.execute(
        update(BulkOperation)
        .where(BulkOperation.id == operation_id, BulkOperation.lease_until == lease)
        .values(lease_until=_lease_end(renew) if renew is not None else None, **fields)
        .returning(BulkOperation.lease_until)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    return row.lease_until or lease


def stalled(session: Session, *, lease_seconds: float) -> list[BulkOperation]:
    """Unfinished operations no run holds and none has touched for a lease: their task
    died, or its message was lost."""
    idle_since = func.now() - dt.timedelta(seconds=lease_seconds)
    return list(
        session.scalars(
            select(BulkOperation)
            .where(
                BulkOperation.status.in_(UNFINISHED),
                or_(
                    BulkOperation.lease_until < func.now(),
                    and_(BulkOperation.lease_until.is_(None), BulkOperation.updated_at < idle_since),
                ),
            )
            .with_for_update(skip_locked=True)
        )
    )


def _lease_end(seconds: float) -> Any:
    return func.clock_timestamp() + dt.timedelta(seconds=seconds)
