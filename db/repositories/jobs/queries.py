"""Reading jobs: one job (for its owner, by idempotency key), lists, and the counts and
ids the scheduler, the reaper and the admin API ask for.

A poll's query and the owner's-waiting-jobs question run on every poll and every job's
end, so they are SQL text on the session's connection (db/raw.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from db import raw
from db.models.job import (
    ACTIVE,
    QUEUED,
    RUNNING,
    SCHEDULED,
    Job,
)
from db.models.user import User

JOB_COLUMNS = tuple(column.name for column in Job.__table__.columns)


def get(session: Session, *, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


# Only the given user's job, and only while their account is open.
_GET_FOR_USER = (
    select(Job)
    .join(User, User.id == Job.user_id)
    .where(Job.id == bindparam("job_id"), Job.user_id == bindparam("user_id"), User.deleted_at.is_(None))
)


def row_for_user(session: raw.Executor, *, job_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    """The job's columns as a read-only named tuple, if it is this user's and their
    account is open: a poll's one query, SQL text (db/raw.py) with no ORM instance."""
    return raw.fetch_one(session, _ROW_FOR_USER, {"job_id": job_id, "user_id": user_id}, named=True)


_ROW_FOR_USER = raw.Prepared(
    f"SELECT {', '.join(f'jobs.{name}' for name in JOB_COLUMNS)} "  # noqa: S608 - the model's names
    "FROM jobs JOIN users ON users.id = jobs.user_id "
    "WHERE jobs.id = %(job_id)s AND jobs.user_id = %(user_id)s AND users.deleted_at IS NULL"
)


def get_for_user(session: Session, *, job_id: uuid.UUID, user_id: uuid.UUID) -> Job | None:
    """The job, as an ORM `Job` to change (a cancel, a long poll's refresh), if it is this
    user's and their account is open; a plain poll reads `row_for_user` instead."""
    return session.scalar(_GET_FOR_USER, {"job_id": job_id, "user_id": user_id})


def get_by_idempotency_key(session: Session, *, user_id: uuid.UUID, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.user_id == user_id, Job.idempotency_key == key))


def by_idempotency_keys(session: Session, *, user_id: uuid.UUID, keys: Sequence[str]) -> dict[str, Job]:
    """The user's jobs made with any of `keys`, by key (a batch's replays, in one query)."""
    if not keys:
        return {}
    query = select(Job).where(Job.user_id == user_id, Job.idempotency_key.in_(list(keys)))
    return {job.idempotency_key: job for job in session.scalars(query)}


def list_for_user(
    session: Session,
    *,
    user_id: uuid.UUID,
    statuses: Sequence[str] = (),
    tool: str | None = None,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 20,
) -> list[Job]:
    """Newest first; `after` is the (created_at, id) of the last row already seen."""
    query = select(Job).where(Job.user_id == user_id)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if tool:
        query = query.where(Job.tool == tool)
    if after is not None:
        created_at, job_id = after
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(query))


def ids_with_lapsed_lease(session: Session, *, limit: int = 500) -> list[tuple[uuid.UUID, int]]:
    query = (
        select(Job.id, Job.attempt)
        .where(Job.status == RUNNING, Job.lease_until < func.now())
        .order_by(Job.lease_until)
        .limit(limit)
    )
    return [(row.id, row.attempt) for row in session.execute(query)]


def count_in_flight(session: Session, *, user_id: uuid.UUID) -> int:
    """The user's jobs that hold a running slot: sent to the broker, or running."""
    return session.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.user_id == user_id,
            or_(Job.status == RUNNING, and_(Job.status == QUEUED, Job.dispatched_at.is_not(None))),
        )
    )


_HELD_BEFORE = raw.Prepared("""
SELECT count(*) FROM jobs
WHERE user_id = %(user_id)s AND status = 'queued' AND dispatched_at IS NULL AND expires_at > now()
  AND (created_at, id) < (%(created_at)s, %(job_id)s)
""")


def count_held_before(
    session: raw.Executor, *, user_id: uuid.UUID, created_at: dt.datetime, job_id: uuid.UUID
) -> int:
    """The owner's jobs held for their running limit that admission sends before this
    one (claim_waiting's order). Among the owner's active jobs only (ix_jobs_user_active),
    never the whole queue: a held job's poll asks."""
    params = {"user_id": user_id, "created_at": created_at, "job_id": job_id}
    return raw.fetch_one(session, _HELD_BEFORE, params)[0]


def users_with_waiting(session: Session, *, limit: int = 1000) -> list[uuid.UUID]:
    query = (
        select(Job.user_id)
        .where(Job.status == QUEUED, Job.dispatched_at.is_(None), Job.expires_at > func.now())
        .group_by(Job.user_id)
        .order_by(func.min(Job.created_at))
        .limit(limit)
    )
    return list(session.scalars(query))


def ids_lost_in_broker(session: Session, *, sent_before: int, limit: int = 500) -> list[uuid.UUID]:
    """Queued jobs sent so long ago that their message was probably lost (a broker
    restart); sending again is safe because starting a job is a compare-and-set."""
    query = (
        select(Job.id)
        .where(
            Job.status == QUEUED,
            Job.expires_at > func.now(),
            Job.dispatched_at < func.now() - dt.timedelta(seconds=sent_before),
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_scheduled(session: Session, *, user_id: uuid.UUID) -> int:
    """The user's jobs held for later: for their `run_at`, or on the batch lane (a plan
    caps how many they hold)."""
    return session.scalar(
        select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status == SCHEDULED)
    )


def count_active(session: Session, *, user_id: uuid.UUID) -> int:
    return session.scalar(
        select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status.in_(ACTIVE))
    )


def ids_running_for_user(session: Session, *, user_id: uuid.UUID) -> list[uuid.UUID]:
    return list(session.scalars(select(Job.id).where(Job.user_id == user_id, Job.status == RUNNING)))


def list_all(
    session: Session,
    *,
    user_id: uuid.UUID | None = None,
    statuses: Sequence[str] = (),
    tool: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Every user's jobs (the admin API), newest first; `created_to` is exclusive."""
    query = select(Job)
    if user_id is not None:
        query = query.where(Job.user_id == user_id)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if tool:
        query = query.where(Job.tool == tool)
    if created_from is not None:
        query = query.where(Job.created_at >= created_from)
    if created_to is not None:
        query = query.where(Job.created_at < created_to)
    if after is not None:
        created_at, job_id = after
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: count for status, count in rows}


def get_retry(session: Session, *, job_id: uuid.UUID) -> Job | None:
    """The job made by retrying `job_id`, if any."""
    return session.scalar(select(Job).where(Job.retry_of == job_id))
