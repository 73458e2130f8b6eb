"""DELETE /jobs/<id>: the owner removes one finished result (workers/job_removal.py
says what goes and what billing keeps)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from api.services import jobs as job_rules
from api.services.errors import OUTAGE_RETRY_AFTER, Conflict, Unavailable
from settings import Settings
from workers import job_removal
from workers.storage import StorageError, get_storage

logger = logging.getLogger(__name__)


def delete(session: Session, *, user_id: uuid.UUID, job_id: uuid.UUID, settings: Settings) -> None:
    """404 for anyone else's job; 409 while it is queued or running (cancel it first) or
    while an export of it is being built; 503 when the store cannot delete its files."""
    job = job_rules.get(session, user_id=user_id, job_id=job_id)
    try:
        outcome = job_removal.remove(session, job=job, storage=get_storage(settings))
    except (StorageError, OSError):
        session.rollback()
        logger.warning("job_id=%s not deleted: the store refused", job_id, exc_info=True)
        raise Unavailable(
            "The job's stored files could not be deleted just now, so the job was kept. Try again.",
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        ) from None
    if outcome == job_removal.NOT_FINISHED:
        session.rollback()
        raise Conflict(
            f"The job is {job.status}: cancel it first (POST /jobs/{job_id}/cancel), then delete it."
        )
    if outcome == job_removal.EXPORTING:
        session.rollback()
        raise Conflict("An export of this job is being built; delete the job once it has finished.")
    session.commit()
    job_removal.forget_events([job_id])
