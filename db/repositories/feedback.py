"""A job's feedback from its owner: one per job, in the job's row, replaced on change."""

from __future__ import annotations

import uuid

from sqlalchemy import func, null, update
from sqlalchemy.orm import Session

from db.models.job import TERMINAL, Job


def set_on_finished(session: Session, *, job_id: uuid.UUID, rating: str, comment: str | None) -> bool:
    """Record (or replace) the feedback, only on a finished job; whether it was."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(TERMINAL))
        .values(
            feedback_rating=rating, feedback_comment=comment, feedback_at=func.now(), updated_at=func.now()
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def clear(session: Session, *, job_id: uuid.UUID) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(feedback_rating=None, feedback_comment=null(), feedback_at=None, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
