"""The rules for acting on one job that already exists: cancel it (its owner or an
operator), run it again (an operator). They sit below the API so that a bulk operation's
task (workers/bulk_operations.py) applies the very rules a request does.

A refusal is `Refused`, which the API answers as 409 and a bulk operation counts as
skipped. What must go out through Celery once a change is committed (the job's message,
its webhook and email) is handed in by the caller as `send` and `announce`: workers do
not import tasks."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Job, User
from db.models.job import CANCELED, EXPIRED, FAILED, QUEUED, RUNNING, SCHEDULED
from db.redis_client import get_redis
from db.repositories import audit, jobs, users
from settings import Settings
from workers import admission, cancellation, job_stream, logs, metrics
from workers.admission import Send
from workers.plans import get_plan, queue_for
from workers.tools import get_tool

logger = logging.getLogger(__name__)

RETRYABLE = (FAILED, CANCELED, EXPIRED)
Announce = Callable[[uuid.UUID], None]  # a just-finished job's webhook and email


class Refused(Exception):
    """The job's state does not allow the action (the API's 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def cancel(
    session: Session,
    job: Job,
    *,
    send: Send,
    announce: Announce,
    actor: User | None = None,
    admit_next: bool = True,
) -> Job:
    """Cancel a job, for whoever may (its owner, or `actor`, an operator, audited): a
    queued or scheduled one at once, giving its slot to the owner's next job; a running
    one is told to stop and ends `canceled` when its worker sees the flag. A caller
    canceling many jobs passes `admit_next=False` and admits their owners once at the
    end: otherwise each cancel sends the next job it is about to cancel to a worker."""
    was = job.status
    if job.status in (SCHEDULED, QUEUED) and jobs.cancel_queued(session, job_id=job.id):
        session.commit()
        metrics.job_finished(tool=job.tool, status=CANCELED, code="canceled")
        error = {"code": "canceled", "message": "Canceled before it started."}
        job_stream.publish(get_redis(), job.id, job_stream.DONE, {"status": CANCELED, "error": error})
        if admit_next:
            admission.admit(job.user_id, send=send)  # it may have held a slot
        announce(job.id)
    elif job.status in (QUEUED, RUNNING) and jobs.request_cancel(session, job_id=job.id):
        # Running (perhaps taken by a worker a moment ago): tell its worker to stop.
        session.commit()
        cancellation.request(get_redis(), job.id)
    session.refresh(job)
    if job.status not in (SCHEDULED, QUEUED, RUNNING, CANCELED):
        raise Refused(f"The job already {job.status}; there is nothing to cancel.")
    if actor is not None:
        _audit(session, actor, "job.cancel", job.id, {"owner_id": str(job.user_id), "was": was})
        session.commit()
    return job


def retry(session: Session, old: Job, *, actor: User, settings: Settings, send: Send) -> Job:
    """A new job with the failed one's input, owner, tool, model and webhook, linked to it
    by `retry_of` and sent through the owner's normal admission (their plan's running
    limit). It skips the owner's quota check: the operator decided to run it."""
    if old.status not in RETRYABLE:
        raise Refused(f"Only a failed, canceled or expired job can be retried; this one is {old.status}.")
    earlier = jobs.get_retry(session, job_id=old.id)
    if earlier is not None:
        raise Refused(f"This job was already retried as {earlier.id}; retry that one instead.")
    definition = get_tool(old.tool)
    owner = users.get(session, user_id=old.user_id)
    if definition is None or owner is None:
        raise Refused(f"The job cannot run again: its {'tool' if definition is None else 'owner'} is gone.")
    plan = get_plan(owner.plan)
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
        request_id=logs.current_request_id(),
        retry_of=old.id,
        service_tier=old.service_tier,  # the lane it asked for, or its plan chose
    )
    _audit(
        session,
        actor,
        "job.retry",
        old.id,
        {"new_job_id": str(new.id), "owner_id": str(old.user_id), "was": old.status, "error": old.error_code},
    )
    try:
        session.commit()
    except IntegrityError:  # another operator's retry of the same job won
        session.rollback()
        raise Refused("This job was just retried by someone else; see GET /admin/jobs?user=….") from None
    # Like any submit, except that a broker outage does not withdraw it: it stays queued
    # and the beat sends it when the broker is back.
    admitted = admission.admit(new.user_id, send=send)
    if new.id in admitted.failed:
        logger.warning("job_id=%s retry of %s left queued: the broker refused it", new.id, old.id)
    metrics.job_submitted(tool=new.tool, queue=new.queue)
    return jobs.get(session, job_id=new.id)


def _audit(session: Session, actor: User, action: str, job_id: uuid.UUID, details: dict[str, Any]) -> None:
    audit.record(
        session,
        actor_id=actor.id,
        actor_email=actor.email,
        action=action,
        target_type="job",
        target_id=str(job_id),
        details=details,
        request_id=logs.current_request_id(),
    )
