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

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import jobs as job_rules
from api.services.errors import Conflict, Invalid, NotFound
from api.services.health import queue_names
from db.models import AuditEntry, Job, User
from db.models.job import CANCELED, EXPIRED, FAILED, STATUSES
from db.models.user import ROLES
from db.redis_client import get_redis
from db.repositories import audit, jobs, users
from settings import Settings
from tasks import generation
from workers import admission, logs, metrics, queues
from workers.plans import get_plan, queue_for
from workers.tools import get_tool

logger = logging.getLogger(__name__)

RETRYABLE = (FAILED, CANCELED, EXPIRED)
JOB = "job"
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
    """A new job with the failed one's input, owner, tool, model and webhook, linked to it
    by `retry_of` and sent through the owner's normal admission (their plan's running
    limit). It skips the owner's quota check: the admin decided to run it."""
    old = get_job(session, job_id=job_id)
    if old.status not in RETRYABLE:
        raise Conflict(f"Only a failed, canceled or expired job can be retried; this one is {old.status}.")
    earlier = jobs.get_retry(session, job_id=old.id)
    if earlier is not None:
        raise Conflict(f"This job was already retried as {earlier.id}; retry that one instead.")
    definition = get_tool(old.tool)
    owner = users.get(session, user_id=old.user_id)
    if definition is None or owner is None:
        raise Conflict(f"The job cannot run again: its {'tool' if definition is None else 'owner'} is gone.")
    plan = get_plan(owner.plan)
    request_id = logs.current_request_id()
    new = jobs.create(
        session,
        user_id=old.user_id,
        tool=old.tool,
        input=dict(old.input),
        model=old.model,
        queue=queue_for(plan, definition.queue),
        priority=1 if plan.priority else 0,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.job_start_deadline),
        webhook_url=old.webhook_url,
        notify_email=old.notify_email,
        request_id=request_id,
        retry_of=old.id,
        service_tier=old.service_tier,  # the lane it asked for, or its plan chose
    )
    _audit(
        session,
        admin,
        "job.retry",
        old.id,
        {"new_job_id": str(new.id), "owner_id": str(old.user_id), "was": old.status, "error": old.error_code},
    )
    try:
        session.commit()
    except IntegrityError:  # another admin's retry of the same job won
        session.rollback()
        raise Conflict("This job was just retried by someone else; see GET /admin/jobs?user=….") from None
    # Like any submit, except that a broker outage does not withdraw it: it stays queued
    # and the beat sends it when the broker is back.
    admitted = admission.admit(new.user_id, send=generation.dispatch)
    if new.id in admitted.failed:
        logger.warning("job_id=%s retry of %s left queued: the broker refused it", new.id, old.id)
    metrics.job_submitted(tool=new.tool, queue=new.queue)
    return jobs.get(session, job_id=new.id)


def cancel(session: Session, *, admin: User, job_id: uuid.UUID) -> Job:
    """Any user's job, under the owner's cancel rules (409 once it has finished)."""
    job = get_job(session, job_id=job_id)
    was = job.status
    job = job_rules.cancel_job(session, job)
    _audit(session, admin, "job.cancel", job.id, {"owner_id": str(job.user_id), "was": was})
    session.commit()
    return job


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


def _audit(session: Session, admin: User, action: str, job_id: uuid.UUID, details: dict[str, Any]) -> None:
    audit.record(
        session,
        actor_id=admin.id,
        actor_email=admin.email,
        action=action,
        target_type=JOB,
        target_id=str(job_id),
        details=details,
        request_id=logs.current_request_id(),
    )


def resolve_user(session: Session, user: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(user)
    except ValueError:
        found = users.get_by_email(session, email=user)
        return found.id if found is not None else None


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
