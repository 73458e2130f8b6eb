"""The batch lane's rows: held jobs (`scheduled`, `lane = 'batch'`) and the provider's
batches they were sent in (provider_batches). Each move of a job is a compare-and-set,
as every job transition is (db/repositories/jobs/transitions.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models.job import BATCH, SCHEDULED, Job
from db.models.provider_batch import CLOSED, OPEN, ProviderBatch
from db.models.user import User


def _held():
    return (Job.status == SCHEDULED, Job.lane == BATCH)


def unsent(session: Session, *, deadline_after: dt.datetime, limit: int) -> list[Any]:
    """Held jobs not sent in a batch yet whose deadline leaves the batch time to answer,
    oldest first, with what their prompt is built from (the owner's name and profile)."""
    rows = session.execute(
        select(
            Job.id, Job.user_id, Job.tool, Job.model, Job.input, User.name.label("owner_name"), User.profile
        )
        .join(User, User.id == Job.user_id)
        .where(*_held(), Job.provider_batch_id.is_(None), Job.deadline > deadline_after)
        .order_by(Job.created_at, Job.id)
        .limit(limit)
    ).all()
    return list(rows)


def assign(session: Session, *, job_ids: Sequence[uuid.UUID], provider_batch_id: str) -> int:
    """Record the batch on the jobs still held and not sent; returns how many."""
    result = session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids), *_held(), Job.provider_batch_id.is_(None))
        .values(provider_batch_id=provider_batch_id, updated_at=func.now())
    )
    return result.rowcount


def add_batch(
    session: Session, *, batch_id: str, model: str, input_file_id: str, jobs: int, status: str
) -> None:
    session.add(
        ProviderBatch(
            id=batch_id, model=model, input_file_id=input_file_id, jobs=jobs, provider_status=status
        )
    )


def open_batches(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(ProviderBatch.id).where(ProviderBatch.state == OPEN).order_by(ProviderBatch.created_at)
        )
    )


def close_batch(session: Session, *, batch_id: str, provider_status: str) -> None:
    session.execute(
        update(ProviderBatch)
        .where(ProviderBatch.id == batch_id, ProviderBatch.state == OPEN)
        .values(state=CLOSED, provider_status=provider_status, closed_at=func.now())
    )


def of_batch(session: Session, *, provider_batch_id: str) -> list[Any]:
    """Every job sent in the batch, whatever its state now: a job taken out or canceled
    since has its line answered too, and its outcome is then refused (`finish` from
    `scheduled` only), its call kept in the ledger unbilled."""
    return list(
        session.execute(
            select(
                Job.id,
                Job.user_id,
                Job.tool,
                Job.model,
                Job.status,
                Job.webhook_url,
                Job.notify_email,
                Job.batch_id,
            ).where(Job.provider_batch_id == provider_batch_id)
        ).all()
    )


def take_out(
    session: Session,
    *,
    job_ids: Sequence[uuid.UUID] = (),
    due_by: dt.datetime | None = None,
    start_within: int,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Move held jobs to the normal lane: queued (not yet sent, so admission sends them)
    on the standard lane, with at least `start_within` seconds to start. The given jobs,
    or every held job whose deadline is by `due_by`. Returns (job id, owner) of each job
    moved; a job no longer held (finished by its batch, canceled) is not."""
    where = [*_held()]
    if due_by is not None:
        where.append(Job.deadline <= due_by)
    else:
        where.append(Job.id.in_(job_ids))
    rows = session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(*where)
        .values(
            status="queued",
            lane=None,  # the normal lane: its run records the lane that answered
            dispatched_at=None,
            expires_at=func.greatest(Job.expires_at, func.now() + dt.timedelta(seconds=start_within)),
            updated_at=func.now(),
        )
        .returning(Job.id, Job.user_id)
    ).all()
    return [(row.id, row.user_id) for row in rows]
