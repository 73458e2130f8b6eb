"""What the beat's clean-ups remove: outputs and exports past their owner's plan
retention, and accounts never verified. Each removal is a compare-and-set, so a
second run (or two beats at once) removes nothing twice."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, delete, func, null, or_, select, update
from sqlalchemy.orm import Session

from db.models.export import FAILED, SUCCEEDED, Export
from db.models.job import TERMINAL, Job
from db.models.user import User


@dataclass(frozen=True)
class Held:
    """A row past retention and the stored object it points at (if any)."""

    id: uuid.UUID
    user_id: uuid.UUID
    storage_key: str | None


def _retention_cutoff(retention_days: Mapping[str, int], default_days: int) -> ColumnElement:
    """now() minus the retention of the row owner's plan (join User first)."""
    days = case(*((User.plan == plan, days) for plan, days in retention_days.items()), else_=default_days)
    return func.now() - func.make_interval(0, 0, 0, days)


def outputs_past_retention(
    session: Session, *, retention_days: Mapping[str, int], default_days: int, limit: int = 500
) -> list[Held]:
    held = or_(Job.output.is_not(None), Job.output_key.is_not(None))
    query = (
        select(Job.id, Job.user_id, Job.output_key)
        .join(User, User.id == Job.user_id)
        .where(
            held, Job.status.in_(TERMINAL), Job.finished_at < _retention_cutoff(retention_days, default_days)
        )
        .order_by(Job.finished_at)
        .limit(limit)
    )
    return [Held(row.id, row.user_id, row.output_key) for row in session.execute(query)]


def clear_output(session: Session, *, job_id: uuid.UUID) -> Held | None:
    """Drop a job's output from its row; returns the storage key to delete after commit."""
    held = or_(Job.output.is_not(None), Job.output_key.is_not(None))
    row = session.execute(
        select(Job.id, Job.user_id, Job.output_key).where(Job.id == job_id, held).with_for_update()
    ).first()
    if row is None:
        return None
    session.execute(update(Job).where(Job.id == job_id).values(output=null(), output_key=None))
    return Held(row.id, row.user_id, row.output_key)


def exports_past_retention(
    session: Session, *, retention_days: Mapping[str, int], default_days: int, limit: int = 500
) -> list[Held]:
    query = (
        select(Export.id, Export.user_id, Export.storage_key)
        .join(User, User.id == Export.user_id)
        .where(
            Export.status.in_((SUCCEEDED, FAILED)),
            Export.finished_at < _retention_cutoff(retention_days, default_days),
        )
        .order_by(Export.finished_at)
        .limit(limit)
    )
    return [Held(row.id, row.user_id, row.storage_key) for row in session.execute(query)]


def delete_export(session: Session, *, export_id: uuid.UUID) -> Held | None:
    row = session.execute(
        delete(Export)
        .where(Export.id == export_id, Export.status.in_((SUCCEEDED, FAILED)))
        .returning(Export.id, Export.user_id, Export.storage_key)
    ).first()
    return None if row is None else Held(row.id, row.user_id, row.storage_key)


def _removable(cutoff: dt.datetime, default_plan: str) -> tuple[ColumnElement, ...]:
    # An admin, or an account on a paid plan, is never removed for want of a click.
    return (
        User.email_verified_at.is_(None),
        User.created_at < cutoff,
        User.role != "admin",
        User.plan == default_plan,
    )


def unverified_before(
    session: Session, *, cutoff: dt.datetime, default_plan: str, limit: int = 500
) -> list[uuid.UUID]:
    query = select(User.id).where(*_removable(cutoff, default_plan)).order_by(User.created_at).limit(limit)
    return list(session.scalars(query))


def delete_unverified(
    session: Session, *, user_id: uuid.UUID, cutoff: dt.datetime, default_plan: str
) -> bool:
    """Delete the account (its jobs, conversations and exports go with it, by
    cascade) unless it was verified, or upgraded, in the meantime."""
    result = session.execute(delete(User).where(User.id == user_id, *_removable(cutoff, default_plan)))
    return result.rowcount == 1
