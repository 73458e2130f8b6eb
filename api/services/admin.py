"""The operators' rules: every user's jobs, retrying and canceling them, the state of
the queues, an account's role (`flask --app wsgi users set-role`, api/cli.py). Each
action is written to the audit log in the action's transaction."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.services import jobs as job_rules
from api.services.errors import Conflict, Invalid, NotFound
from api.services.health import queue_names
from db.models import AuditEntry, Job, User
from db.models.job import STATUSES
from db.models.user import ROLES
from db.redis_client import get_redis
from db.repositories import audit, jobs, users
from settings import Settings
from tasks import generation
from workers import job_control, queues

logger = logging.getLogger(__name__)

USER = "user"
SET_ROLE = "user.set_role"


def list_jobs(
    session: Session,
    *,
    user: str | None = None,
    statuses: Sequence[str] = (),
    tool: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    """Every user's jobs, newest first. `user` is an id or an email; an unknown one
    matches nothing, as any filter would."""
    user_id = None
    if user:
        user_id = resolve_user(session, user)
        if user_id is None:
            return [], None
    if created_from is not None and created_to is not None and created_from >= created_to:
        raise Invalid(
            "created_from must be before created_to.",
            errors={"query": {"created_to": ["Must be later than created_from."]}},
        )
    rows = jobs.list_all(
        session,
        user_id=user_id,
        statuses=statuses,
        tool=tool,
        created_from=_aware(created_from),
        created_to=_aware(created_to),
        after=_decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    return page, (_encode_cursor(page[-1].created_at, page[-1].id) if more else None)


def get_job(session: Session, *, job_id: uuid.UUID) -> Job:
    job = jobs.get(session, job_id=job_id)
    if job is None:
        raise NotFound("No job with this id.")
    return job


def retry(session: Session, *, admin: User, job_id: uuid.UUID, settings: Settings) -> Job:
    """Run a failed, canceled or expired job again as a new job linked by `retry_of`
    (workers/job_control.py has the rules); 409 when they refuse."""
    old = get_job(session, job_id=job_id)
    try:
        return job_control.retry(session, old, actor=admin, settings=settings, send=generation.dispatch)
    except job_control.Refused as refused:
        raise Conflict(refused.message) from None


def cancel(session: Session, *, admin: User, job_id: uuid.UUID) -> Job:
    """Any user's job, under the owner's cancel rules (409 once it has finished)."""
    return job_rules.cancel_job(session, get_job(session, job_id=job_id), actor=admin)


@dataclass(frozen=True)
class RoleChange:
    email: str
    was: str
    role: str

    @property
    def changed(self) -> bool:
        return self.was != self.role


def set_role(session: Session, *, email: str, role: str, actor: str) -> RoleChange:
    """Give the account with this email (matched as login matches it) the role, and
    record the change in the audit log in the same transaction, by `actor` (there is
    no account behind a command). A role it already has changes nothing and is not
    recorded."""
    if role not in ROLES:
        raise Invalid(f"Unknown role {role!r}; the roles are {', '.join(ROLES)}.")
    user = users.get_by_email(session, email=email, lock=True)
    if user is None:
        raise NotFound(f"No account has the email {users.normalize_email(email)}.")
    if user.deleted_at is not None:
        raise Conflict(
            f"The account {user.email} was closed (it is being deleted); its role stays {user.role}."
        )
    change = RoleChange(email=user.email, was=user.role, role=role)
    if change.changed:
        users.update_fields(session, user=user, role=role)
        audit.record(
            session,
            actor_id=None,
            actor_email=actor,
            action=SET_ROLE,
            target_type=USER,
            target_id=str(user.id),
            details={"email": user.email, "was": change.was, "role": role},
        )
    session.commit()
    return change


def queue_stats(session: Session, *, settings: Settings) -> dict[str, Any]:
    names = queue_names()
    depth = queues.depths(get_redis(settings.celery_broker_url), names)
    workers = queues.workers_by_queue(get_redis(), names)
    counts = jobs.count_by_status(session)
    return {
        "queues": [{"name": name, "depth": depth[name], "workers": workers[name]} for name in names],
        "jobs": {status: counts.get(status, 0) for status in STATUSES},
    }


def audit_page(
    session: Session,
    *,
    action: str | None = None,
    target_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    rows = audit.list_page(
        session,
        action=action,
        target_id=target_id,
        after=_decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    return page, (_encode_cursor(page[-1].at, page[-1].id) if more else None)


def resolve_user(session: Session, user: str) -> uuid.UUID | None:
    return users.id_of(session, id_or_email=user)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """A time without a zone is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _encode_cursor(at: dt.datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, row_id = raw.split("|")
        return dt.datetime.fromisoformat(at), uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid(
            "The cursor is not valid.",
            errors={"query": {"cursor": ["Pass next_cursor from the previous page unchanged."]}},
        ) from None
