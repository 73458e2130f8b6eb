"""Batch rows: make one, read it with its jobs' counts and a page of its jobs, cancel
what of it has not finished. A batch's jobs are `jobs.batch_id`; the counts are read
from them (the `ix_jobs_batch` index), so no counter can drift from the jobs."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from db.models.batch import Batch
from db.models.job import QUEUED, RUNNING, STATUSES, Job


def create(session: Session, *, user_id: uuid.UUID, webhook_url: str | None) -> Batch:
    batch = Batch(id=uuid.uuid4(), user_id=user_id, webhook_url=webhook_url)
    session.add(batch)
    session.flush()
    return batch


def get_for_user(session: Session, *, batch_id: uuid.UUID, user_id: uuid.UUID) -> Batch | None:
    return session.scalar(select(Batch).where(Batch.id == batch_id, Batch.user_id == user_id))


def get(session: Session, *, batch_id: uuid.UUID) -> Batch | None:
    return session.get(Batch, batch_id)


def counts(session: Session, *, batch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """Each batch's jobs by status (every status present, zero for none)."""
    found: dict[uuid.UUID, dict[str, int]] = {batch_id: dict.fromkeys(STATUSES, 0) for batch_id in batch_ids}
    if not batch_ids:
        return found
    query = (
        select(Job.batch_id, Job.status, func.count())
        .where(Job.batch_id.in_(list(batch_ids)))
        .group_by(Job.batch_id, Job.status)
    )
    for batch_id, status, count in session.execute(query):
        found[batch_id][status] = count
    return found


def jobs_page(session: Session, *, batch_id: uuid.UUID, after: int | None, limit: int) -> list[Job]:
    """The batch's jobs in the order of the request's items; `after`: the last index seen."""
    query = select(Job).where(Job.batch_id == batch_id)
    if after is not None:
        query = query.where(Job.batch_index > after)
    return list(session.scalars(query.order_by(Job.batch_index).limit(limit)))


def list_for_user(
    session: Session, *, user_id: uuid.UUID, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
) -> list[Batch]:
    """Newest first; `after` is the (created_at, id) of the last batch already seen."""
    query = select(Batch).where(Batch.user_id == user_id)
    if after is not None:
        created_at, batch_id = after
        query = query.where(
            or_(Batch.created_at < created_at, and_(Batch.created_at == created_at, Batch.id < batch_id))
        )
    return list(session.scalars(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)))


def finish_if_done(session: Session, *, batch_id: uuid.UUID) -> bool:
    """Mark the batch finished (and record its webhook) if none of its jobs can still
    move; the same function the jobs' trigger calls (migration 0012)."""
    return bool(session.scalar(text("SELECT batch_finish_if_done(:batch_id)"), {"batch_id": batch_id}))


def cancel_queued(session: Session, *, batch_id: uuid.UUID) -> list[Any]:
    """Cancel every queued job of the batch in one statement, as jobs.cancel_queued does
    one (the triggers settle each one's tokens and record its webhook): the canceled
    jobs' (id, tool, user_id, webhook_url, notify_email)."""
    rows = session.execute(
        update(Job)
        .where(Job.batch_id == batch_id, Job.status == QUEUED)
        .values(
            status="canceled",
            finished_at=func.now(),
            lease_until=None,
            error_code="canceled",
            error_message="Canceled before it started.",
        )
        .returning(Job.id, Job.tool, Job.user_id, Job.webhook_url, Job.notify_email)
        .execution_options(synchronize_session=False)
    )
    return list(rows)


def request_cancel(session: Session, *, batch_id: uuid.UUID) -> list[uuid.UUID]:
    """Flag the batch's running jobs; each one's worker stops it and ends it `canceled`."""
    rows = session.execute(
        update(Job)
        .where(Job.batch_id == batch_id, Job.status == RUNNING, Job.cancel_requested_at.is_(None))
        .values(cancel_requested_at=func.now())
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return list(rows.scalars())
