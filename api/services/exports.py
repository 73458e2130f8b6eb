"""The rules for exports: a succeeded job's output as a file, or all of a user's
data as a zip. The row is committed before its message is sent; a message that
cannot be sent now is sent by the beat's sweep (the export stays `queued`)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.services import jobs as job_service
from api.services.errors import Conflict, NotFound
from db.models import Export, User
from db.models.export import ACCOUNT_FORMAT, SUCCEEDED
from db.models.job import SUCCEEDED as JOB_SUCCEEDED
from db.repositories import exports
from settings import Settings
from tasks import exports as export_tasks
from workers.storage import get_storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportView:
    """An export as the API shows it, with a fresh download URL once it is ready."""

    id: uuid.UUID
    job_id: uuid.UUID | None
    format: str
    status: str
    url: str | None
    expires_at: dt.datetime | None
    error: dict[str, Any] | None
    filename: str | None
    size_bytes: int | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


def export_job(
    session: Session, *, user: User, job_id: uuid.UUID, format: str, settings: Settings
) -> ExportView:
    job = job_service.get(session, user_id=user.id, job_id=job_id)
    if job.status != JOB_SUCCEEDED:
        raise Conflict(f"Only a succeeded job can be exported; this one is {job.status}.")
    if job.output is None and job.output_key is None:
        raise Conflict(
            "This job's output is no longer kept (past your plan's retention), so it cannot be exported."
        )
    return _start(session, user=user, job_id=job.id, format=format, settings=settings)


def export_account(session: Session, *, user: User, settings: Settings) -> ExportView:
    return _start(session, user=user, job_id=None, format=ACCOUNT_FORMAT, settings=settings)


def get(session: Session, *, user: User, export_id: uuid.UUID, settings: Settings) -> ExportView:
    export = exports.get_for_user(session, export_id=export_id, user_id=user.id)
    if export is None:
        raise NotFound("No export with this id.")
    return view(export, settings=settings)


def _start(
    session: Session, *, user: User, job_id: uuid.UUID | None, format: str, settings: Settings
) -> ExportView:
    # Asking again while one is being built joins it rather than building twice.
    export = exports.find_active(session, user_id=user.id, job_id=job_id, format=format)
    if export is None:
        export = exports.create(session, user_id=user.id, job_id=job_id, format=format)
        session.commit()
        try:
            export_tasks.dispatch(export.id)
        except Exception:
            logger.warning("export_id=%s not sent now; the sweep sends it", export.id, exc_info=True)
    return view(export, settings=settings)


def view(export: Export, *, settings: Settings) -> ExportView:
    url = expires_at = None
    if export.status == SUCCEEDED and export.storage_key:
        ttl = settings.download_url_ttl
        url = get_storage(settings).presigned_url(
            export.storage_key, expires_in=ttl, filename=export.filename
        )
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)
    error = (
        None if export.error_code is None else {"code": export.error_code, "message": export.error_message}
    )
    return ExportView(
        id=export.id,
        job_id=export.job_id,
        format=export.format,
        status=export.status,
        url=url,
        expires_at=expires_at,
        error=error,
        filename=export.filename,
        size_bytes=export.size_bytes,
        created_at=export.created_at,
        finished_at=export.finished_at,
    )
