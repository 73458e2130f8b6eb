"""Export rows and their state transitions (compare-and-set, like jobs)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.models.export import ACTIVE, FAILED, QUEUED, RUNNING, SUCCEEDED, Export

WORKER_LOST = "worker_lost"


def create(session: Session, *, user_id: uuid.UUID, format: str, job_id: uuid.UUID | None = None) -> Export:
    export = Export(user_id=user_id, job_id=job_id, format=format)
    session.add(export)
    session.flush()
    return export


def get(session: Session, *, export_id: uuid.UUID) -> Export | None:
    return session.get(Export, export_id)


def get_for_user(session: Session, *, export_id: uuid.UUID, user_id: uuid.UUID) -> Export | None:
    return session.scalar(select(Export).where(Export.id == export_id, Export.user_id == user_id))


def find_active(
    session: Session, *, user_id: uuid.UUID, format: str, job_id: uuid.UUID | None = None
) -> Export | None:
    """An export of the same thing that is still being built (a repeated request joins it)."""
    same_job = Export.job_id.is_(None) if job_id is None else Export.job_id == job_id
    query = (
        select(Export)
        .where(Export.user_id == user_id, Export.format == format, same_job, Export.status.in_(ACTIVE))
        .order_by(Export.created_at.desc())
        .limit(1)
    )
    return session.scalar(query)


def storage_keys_for_job(session: Session, *, job_id: uuid.UUID) -> list[str]:
    """The stored files of a job's exports (deleting the job removes them)."""
    query = select(Export.storage_key).where(Export.job_id == job_id, Export.storage_key.is_not(None))
    return list(session.scalars(query))


def building_for_job(session: Session, *, job_id: uuid.UUID) -> bool:
    query = select(Export.id).where(Export.job_id == job_id, Export.status.in_(ACTIVE)).limit(1)
    return session.scalar(query) is not None


def start(session: Session, *, export_id: uuid.UUID, stale_after: int, max_attempts: int) -> Export | None:
    """Take the export for this delivery: queued → running, or take over a running
    one whose worker has been silent for `stale_after` seconds (it died). None when
    this delivery must not build it."""
    now = func.now()
    stale = and_(Export.status == RUNNING, Export.started_at < now - dt.timedelta(seconds=stale_after))
    export = session.scalar(
        update(Export)
        .where(Export.id == export_id, or_(Export.status == QUEUED, stale), Export.attempt < max_attempts)
        .values(status=RUNNING, attempt=Export.attempt + 1, started_at=now)
        .returning(Export)
        .execution_options(populate_existing=True)
    )
    if export is None:
        session.execute(
            update(Export)
            .where(
                Export.id == export_id, or_(Export.status == QUEUED, stale), Export.attempt >= max_attempts
            )
            .values(
                status=FAILED,
                finished_at=now,
                error_code=WORKER_LOST,
                error_message=f"The export was started {max_attempts} times without finishing.",
            )
        )
    return export


def succeed(
    session: Session, *, export_id: uuid.UUID, storage_key: str, filename: str, size_bytes: int
) -> bool:
    result = session.execute(
        update(Export)
        .where(Export.id == export_id, Export.status == RUNNING)
        .values(
            status=SUCCEEDED,
            storage_key=storage_key,
            filename=filename,
            size_bytes=size_bytes,
            finished_at=func.now(),
            error_code=None,
            error_message=None,
        )
    )
    return result.rowcount == 1


def fail(session: Session, *, export_id: uuid.UUID, code: str, message: str) -> bool:
    result = session.execute(
        update(Export)
        .where(Export.id == export_id, Export.status.in_(ACTIVE))
        .values(status=FAILED, finished_at=func.now(), error_code=code, error_message=message)
    )
    return result.rowcount == 1


def for_user(session: Session, *, user_id: uuid.UUID) -> list[Export]:
    return list(session.scalars(select(Export).where(Export.user_id == user_id).order_by(Export.created_at)))


def ids_to_resend(session: Session, *, quiet_for: int, stale_after: int, limit: int = 200) -> list[uuid.UUID]:
    """Exports whose message was probably lost: queued, or running with a worker
    silent for `stale_after` seconds, and not (re-)sent for `quiet_for` seconds."""
    now = func.now()
    query = (
        select(Export.id)
        .where(
            Export.updated_at < now - dt.timedelta(seconds=quiet_for),
            or_(
                Export.status == QUEUED,
                and_(Export.status == RUNNING, Export.started_at < now - dt.timedelta(seconds=stale_after)),
            ),
        )
        .order_by(Export.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def touch(session: Session, *, export_id: uuid.UUID) -> None:
    session.execute(update(Export).where(Export.id == export_id).values(updated_at=func.now()))
