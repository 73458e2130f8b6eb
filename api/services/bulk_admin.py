"""Admin bulk actions: retry or cancel every job a filter matches (the filters of GET
/admin/jobs, and an error code), or purge finished jobs older than a date with their
stored objects. Each one job at a time through the single-job rules (admin.retry,
admin.cancel, workers/job_removal.py), so a job the rules refuse is skipped and
counted, never forced. A dry run only counts; more matches than `max` is refused.
Each operation is a `bulk_operations` row and one audit entry with its filter and counts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from api.services import admin as admin_rules
from api.services.errors import Conflict, DomainError, Invalid, NotFound
from db.models import BulkOperation, User
from db.models.bulk_operation import CANCEL, PURGE, RETRY, SUCCEEDED
from db.repositories import audit, bulk_operations, jobs
from settings import Settings
from workers import job_removal, logs
from workers.storage import StorageError, get_storage

MAX_JOBS = 1000  # the largest `max` a request may ask for


def run(
    session: Session,
    *,
    admin: User,
    action: str,
    settings: Settings,
    dry_run: bool = False,
    max: int = 100,
    **filters: Any,
) -> dict[str, Any] | BulkOperation:
    criteria = _criteria(session, filters)
    if criteria is None:  # an unknown user matches nothing
        matched, ids = 0, []
    else:
        matched, ids = bulk_operations.matching(session, **criteria, limit=max)
    shown_filter = {name: _jsonable(value) for name, value in filters.items() if value not in (None, (), [])}
    if dry_run:
        return {"id": None, "action": action, "dry_run": True, "filter": shown_filter, "matched": matched}
    if matched > max:
        raise Conflict(
            f"{matched} jobs match, more than max ({max}): narrow the filter, or raise max "
            f"(at most {MAX_JOBS}) after a dry run."
        )
    operation = bulk_operations.create(
        session,
        action=action,
        filter=shown_filter,
        actor_id=admin.id,
        actor_email=admin.email,
        matched=matched,
    )
    session.commit()
    one = _one_job(session, action, admin=admin, settings=settings)
    done = skipped = 0
    for job_id in ids:
        try:
            one(job_id)
            done += 1
        except (DomainError, StorageError, OSError):  # the single-job rules refused it
            session.rollback()
            skipped += 1
    operation = bulk_operations.get(session, operation_id=operation.id)
    operation.done, operation.skipped = done, skipped
    operation.status, operation.finished_at = SUCCEEDED, dt.datetime.now(dt.UTC)
    audit.record(
        session,
        actor_id=admin.id,
        actor_email=admin.email,
        action=f"jobs.bulk_{action}",
        target_type="bulk_operation",
        target_id=str(operation.id),
        details={"filter": shown_filter, "matched": matched, "done": done, "skipped": skipped},
        request_id=logs.current_request_id(),
    )
    session.commit()
    return operation


def get(session: Session, *, operation_id: uuid.UUID) -> BulkOperation:
    operation = bulk_operations.get(session, operation_id=operation_id)
    if operation is None:
        raise NotFound("No bulk operation with this id.")
    return operation


def _one_job(session: Session, action: str, *, admin: User, settings: Settings) -> Callable[[uuid.UUID], Any]:
    if action == RETRY:
        return lambda job_id: admin_rules.retry(session, admin=admin, job_id=job_id, settings=settings)
    if action == CANCEL:
        return lambda job_id: admin_rules.cancel(session, admin=admin, job_id=job_id)
    if action == PURGE:
        storage = get_storage(settings)

        def purge(job_id: uuid.UUID) -> None:
            job = jobs.get(session, job_id=job_id)
            if job is None or job_removal.remove(session, job=job, storage=storage) != job_removal.REMOVED:
                raise Conflict("not removable")
            session.commit()
            job_removal.forget_events([job_id])

        return purge
    raise ValueError(f"unknown bulk action {action!r}")


def _criteria(session: Session, filters: dict[str, Any]) -> dict[str, Any] | None:
    criteria = dict(filters)
    user = criteria.pop("user", None)
    if user:
        criteria["user_id"] = admin_rules.resolve_user(session, user)
        if criteria["user_id"] is None:
            return None
    if "status" in criteria:
        criteria["statuses"] = criteria.pop("status")
    if "before" in criteria:
        criteria["finished_before"] = criteria.pop("before")
    start, end = criteria.get("created_from"), criteria.get("created_to")
    if start is not None and end is not None and start >= end:
        raise Invalid(
            "created_from must be before created_to.",
            errors={"json": {"created_to": ["Must be later than created_from."]}},
        )
    return criteria


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return list(value)
    return value
