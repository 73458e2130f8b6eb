"""Admin bulk actions: retry or cancel every job a filter matches (the filters of GET
/admin/jobs, and an error code), or purge finished jobs older than a date with their
stored objects. A dry run only counts; more matches than `max` is refused. Each
operation is a `bulk_operations` row, worked through by workers/bulk_operations.py
(the single-job rules, progress, one audit entry with its filter and counts): in the
request when it matches up to BULK_ADMIN_INLINE_MAX jobs, else in a task the answer
points to."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from api.services.errors import Conflict, Invalid, NotFound
from db.models import BulkOperation, User
from db.models.bulk_operation import MAX_JOBS, QUEUED
from db.repositories import bulk_operations as operations
from settings import Settings
from tasks import bulk_operations as bulk_tasks
from tasks import generation
from workers import bulk_operations


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
    """The dry run's count, or the operation: finished when it ran in the request,
    `queued` when its task will run it (see `in_task`)."""
    start, end = filters.get("created_from"), filters.get("created_to")
    if start is not None and end is not None and start >= end:
        raise Invalid(
            "created_from must be before created_to.",
            errors={"json": {"created_to": ["Must be later than created_from."]}},
        )
    shown_filter = {name: _jsonable(value) for name, value in filters.items() if value not in (None, (), [])}
    criteria = bulk_operations.criteria(session, shown_filter)
    matched = 0 if criteria is None else operations.matching(session, **criteria)
    if dry_run:
        return {"id": None, "action": action, "dry_run": True, "filter": shown_filter, "matched": matched}
    if matched > max:
        raise Conflict(
            f"{matched} jobs match, more than max ({max}): narrow the filter, or raise max "
            f"(at most {MAX_JOBS}) after a dry run."
        )
    operation = operations.create(
        session,
        action=action,
        filter=shown_filter,
        actor_id=admin.id,
        actor_email=admin.email,
        matched=matched,
        status=QUEUED,
    )
    session.commit()
    if matched > settings.bulk_admin_inline_max:
        bulk_tasks.send(operation.id)
    else:
        bulk_operations.run(
            operation.id, settings=settings, send=generation.dispatch, announce=generation.announce_finished
        )
        session.refresh(operation)
    return operation


def in_task(operation: dict[str, Any] | BulkOperation, *, settings: Settings) -> bool:
    """Whether a task runs the operation (answered 202), rather than the request (200)."""
    return isinstance(operation, BulkOperation) and operation.matched > settings.bulk_admin_inline_max


def get(session: Session, *, operation_id: uuid.UUID) -> BulkOperation:
    operation = operations.get(session, operation_id=operation_id)
    if operation is None:
        raise NotFound("No bulk operation with this id.")
    return operation


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return list(value)
    return value
