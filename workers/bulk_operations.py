"""Working through an admin's bulk operation (retry, cancel or purge every job a filter
matches): run inline by the request for a small one, by a task for a large one.

Each job goes through the single-job rules (workers/job_control.py, job_removal.py), so
a job they refuse is skipped and counted, never forced, and one whose stored files could
not be deleted is counted failed and kept. The jobs are taken a chunk at a time in
(created_at, id) order; after each chunk the counts and the last job are written and the
run's lease renewed, so GET /admin/operations/<id> shows the progress and a run that
died is resumed where it had got to by the next one (the beat's sweep sends it). The
chunk it was in is acted on again: the rules make that harmless (a canceled job stays
canceled, a retried one is refused as already retried, a removed one is gone), though
the counts may then call those jobs skipped. Only jobs made before the operation are in
it, so its own retries are not retried again."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from db.models.bulk_operation import CANCEL, FAILED, PURGE, RETRY, SUCCEEDED, BulkOperation
from db.repositories import audit, bulk_operations, jobs, users
from db.session import session_scope
from settings import Settings
from workers import admission, job_control, job_removal, logs
from workers.admission import Send
from workers.job_control import Announce
from workers.storage import StorageError, get_storage

logger = logging.getLogger(__name__)

CHUNK = 25  # jobs between two progress records
MAX_RESUMES = 3  # stalls the sweep resumes before it fails the operation
CONTINUE = "continue"  # the run's time was up with jobs left: send it again

DONE, SKIPPED, FAILED_ONE = "done", "skipped", "failed"


def criteria(session: Session, filter: dict[str, Any]) -> dict[str, Any] | None:
    """The repository's criteria for the filter as the admin sent it (GET /admin/jobs'
    names, times as ISO 8601); None when it names a user that does not exist, which
    matches nothing."""
    found: dict[str, Any] = {}
    for name, value in filter.items():
        if name == "user":
            found["user_id"] = users.id_of(session, id_or_email=value)
            if found["user_id"] is None:
                return None
        elif name == "status":
            found["statuses"] = list(value)
        elif name == "before":
            found["finished_before"] = dt.datetime.fromisoformat(value)
        elif name in ("created_from", "created_to"):
            found[name] = dt.datetime.fromisoformat(value)
        elif name in ("tool", "error_code"):
            found[name] = value
    return found


def run(
    operation_id: uuid.UUID,
    *,
    settings: Settings,
    send: Send,
    announce: Announce,
    budget: float | None = None,
) -> str | None:
    """Work through the operation from where it got to. Returns its status when this run
    ended it, CONTINUE when `budget` seconds ran out with jobs left (the lease is given
    up for the next run), None when another live run holds it or it has ended."""
    lease_seconds = settings.bulk_admin_lease_seconds
    started = time.monotonic()
    with session_scope() as session:
        lease = bulk_operations.claim(session, operation_id=operation_id, lease_seconds=lease_seconds)
        if lease is None:
            return None
        session.commit()
        operation = bulk_operations.get(session, operation_id=operation_id)
        found = criteria(session, operation.filter)
        canceled_for: set[uuid.UUID] = set()  # owners whose next jobs may now be sent
        act = _one_job(
            session, operation, settings=settings, send=send, announce=announce, canceled_for=canceled_for
        )
        counts = {DONE: operation.done, SKIPPED: operation.skipped, FAILED_ONE: operation.failed}
        after = (operation.last_created_at, operation.last_job_id) if operation.last_job_id else None
        try:
            while True:
                ids = []
                if found is not None:
                    ids = bulk_operations.chunk(
                        session, after=after, created_until=operation.created_at, limit=CHUNK, **found
                    )
                for job_id, created_at in ids:
                    counts[act(job_id)] += 1
                    after = (created_at, job_id)
                progress = {"done": counts[DONE], "skipped": counts[SKIPPED], "failed": counts[FAILED_ONE]}
                if after is not None:
                    progress |= {"last_created_at": after[0], "last_job_id": after[1]}
                if len(ids) < CHUNK:
                    return _finish(session, operation, lease, progress)
                out_of_time = budget is not None and time.monotonic() - started > budget
                lease = bulk_operations.record(
                    session,
                    operation_id=operation_id,
                    lease=lease,
                    renew=None if out_of_time else lease_seconds,
                    **progress,
                )
                session.commit()
                if lease is None:
                    logger.warning("bulk_operation_id=%s lost its lease; another run goes on", operation_id)
                    return None
                if out_of_time:
                    return CONTINUE
        finally:
            for user_id in canceled_for:  # once, after the run: see job_control.cancel
                admission.admit(user_id, send=send)


def resume_stalled(settings: Settings, send_operation: Callable[[uuid.UUID], None]) -> tuple[int, int]:
    """Operations no run is working on: sent again to resume. One whose run died (its
    lease lapsed) counts a stall, and once it has stalled MAX_RESUMES times it ends
    `failed` with its counts as far as they got. One waiting for its message (no lease:
    queued, or between two runs) may only be behind a long queue, or its message lost;
    it is sent again without counting, at most once a lease. Returns (resent, failed)."""
    resent: list[uuid.UUID] = []
    failed = 0
    now = dt.datetime.now(dt.UTC)
    with session_scope() as session:
        for operation in bulk_operations.stalled(session, lease_seconds=settings.bulk_admin_lease_seconds):
            if operation.lease_until is None:
                operation.updated_at = now  # not again before another lease has gone by
            elif operation.resumes >= MAX_RESUMES:
                operation.status, operation.finished_at, operation.lease_until = FAILED, now, None
                operation.error = (
                    f"Its task stopped {operation.resumes + 1} times before it finished; the counts "
                    "show how far it got. Run it again (a dry run first) to act on the rest."
                )
                _audit(session, operation)
                failed += 1
                continue
            else:
                operation.resumes += 1
                operation.lease_until = None  # the next run claims it at once
            resent.append(operation.id)
    for operation_id in resent:
        send_operation(operation_id)
    if resent or failed:
        logger.warning("bulk operations: resent=%s failed=%s", len(resent), failed)
    return len(resent), failed


def _finish(
    session: Session, operation: BulkOperation, lease: dt.datetime, progress: dict[str, Any]
) -> str | None:
    lease = bulk_operations.record(
        session,
        operation_id=operation.id,
        lease=lease,
        renew=None,
        status=SUCCEEDED,
        finished_at=dt.datetime.now(dt.UTC),
        **progress,
    )
    if lease is None:
        session.rollback()
        return None
    session.expire(operation)
    _audit(session, operation)
    session.commit()
    return SUCCEEDED


def _audit(session: Session, operation: BulkOperation) -> None:
    audit.record(
        session,
        actor_id=operation.actor_id,
        actor_email=operation.actor_email,
        action=f"jobs.bulk_{operation.action}",
        target_type="bulk_operation",
        target_id=str(operation.id),
        details={
            "filter": operation.filter,
            "matched": operation.matched,
            "done": operation.done,
            "skipped": operation.skipped,
            "failed": operation.failed,
            "status": operation.status,
        },
        request_id=logs.current_request_id(),  # the request that ran it inline
    )


def _one_job(
    session: Session,
    operation: BulkOperation,
    *,
    settings: Settings,
    send: Send,
    announce: Announce,
    canceled_for: set[uuid.UUID],
) -> Callable[[uuid.UUID], str]:
    """What to do with one job of the operation: DONE, SKIPPED (the rules refused, or it is
    gone) or FAILED_ONE (the store refused to delete its files). A cancel adds the job's
    owner to `canceled_for`, for the caller to admit their next jobs once at the end."""
    # The operator's account may be gone since; the audit entries still name them.
    actor = users.get(session, user_id=operation.actor_id) if operation.actor_id else None
    actor = actor or SimpleNamespace(id=None, email=operation.actor_email)

    def action(job_id: uuid.UUID) -> None:
        job = jobs.get(session, job_id=job_id)
        if job is None:
            raise job_control.Refused("gone")
        if operation.action == RETRY:
            job_control.retry(session, job, actor=actor, settings=settings, send=send)
        elif operation.action == CANCEL:
            job_control.cancel(session, job, send=send, announce=announce, actor=actor, admit_next=False)
            canceled_for.add(job.user_id)
        elif operation.action == PURGE:
            if job_removal.remove(session, job=job, storage=storage) != job_removal.REMOVED:
                raise job_control.Refused("not removable")
            session.commit()
            job_removal.forget_events([job_id])

    storage = get_storage(settings) if operation.action == PURGE else None

    def one(job_id: uuid.UUID) -> str:
        try:
            action(job_id)
        except job_control.Refused:
            session.rollback()
            return SKIPPED
        except (StorageError, OSError):
            session.rollback()
            logger.warning("job_id=%s bulk %s: the store refused", job_id, operation.action, exc_info=True)
            return FAILED_ONE
        return DONE

    return one
