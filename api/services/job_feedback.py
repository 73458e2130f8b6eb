"""PUT /jobs/<id>/feedback: the owner's thumbs up or down on a finished job, with an
optional comment. One per job: a second PUT replaces the first."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from api.services import jobs as job_rules
from api.services.errors import Conflict
from db.repositories import feedback


def put(
    session: Session, *, user_id: uuid.UUID, job_id: uuid.UUID, rating: str, comment: str | None = None
) -> Any:
    """The job with its feedback; 404 for anyone else's job, 409 until it has finished."""
    job = job_rules.get(session, user_id=user_id, job_id=job_id)
    if not feedback.set_on_finished(session, job_id=job.id, rating=rating, comment=comment or None):
        session.rollback()
        raise Conflict(f"The job is {job.status}: feedback is taken once it has finished.")
    session.commit()
    session.refresh(job)
    return job


def delete(session: Session, *, user_id: uuid.UUID, job_id: uuid.UUID) -> None:
    job = job_rules.get(session, user_id=user_id, job_id=job_id)
    feedback.clear(session, job_id=job.id)
    session.commit()
