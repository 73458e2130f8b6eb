"""The numbers in the admins' daily report, for jobs created in [start, end)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import extract, func, select
from sqlalchemy.orm import Session

from db.models.job import FAILED, Job
from db.models.user import User


@dataclass(frozen=True)
class Admin:
    id: object
    email: str
    name: str


def admins(session: Session) -> list[Admin]:
    query = select(User.id, User.email, User.name).where(User.role == "admin", User.deleted_at.is_(None))
    return [Admin(row.id, row.email, row.name) for row in session.execute(query.order_by(User.created_at))]


def jobs_by_tool_and_status(session: Session, *, start: dt.datetime, end: dt.datetime) -> dict[str, dict]:
    query = (
        select(Job.tool, Job.status, func.count())
        .where(Job.created_at >= start, Job.created_at < end)
        .group_by(Job.tool, Job.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for tool, status, count in session.execute(query):
        counts.setdefault(tool, {})[status] = count
    return counts


def failures_by_code(session: Session, *, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    code = func.coalesce(Job.error_code, "unknown")
    query = (
        select(code, func.count())
        .where(Job.created_at >= start, Job.created_at < end, Job.status == FAILED)
        .group_by(code)
    )
    return {row[0]: row[1] for row in session.execute(query)}


def usage_totals(session: Session, *, start: dt.datetime, end: dt.datetime) -> tuple[int, int, int]:
    """(input tokens, output tokens, cost in micro-dollars)."""
    row = session.execute(
        select(
            func.coalesce(func.sum(Job.input_tokens), 0),
            func.coalesce(func.sum(Job.output_tokens), 0),
            func.coalesce(func.sum(Job.cost_micros), 0),
        ).where(Job.created_at >= start, Job.created_at < end)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def queue_latency(
    session: Session, *, start: dt.datetime, end: dt.datetime
) -> tuple[float | None, float | None]:
    """p50 and p95 seconds from submit to start (started_at - created_at), or for a
    scheduled job from its run_at: the wait it asked for is not the queue's."""
    seconds = extract("epoch", Job.started_at - func.coalesce(Job.run_at, Job.created_at))
    row = session.execute(
        select(
            func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.95).within_group(seconds),
        ).where(Job.created_at >= start, Job.created_at < end, Job.started_at.is_not(None))
    ).one()
    return (None if row[0] is None else float(row[0])), (None if row[1] is None else float(row[1]))
