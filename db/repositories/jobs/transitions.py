"""A job's state transitions: insert, take, renew, finish, cancel, expire, requeue, admit.

Every transition is one compare-and-set UPDATE (`WHERE status IN …`), so a late
or duplicate delivery can never overwrite a result: whoever loses the race gets
`None`/`False` back and stops. Terminal states never change (the database also
refuses it: see the `jobs_terminal_is_final` trigger).

The UPDATEs skip the ORM's session synchronisation (`_update()`): they are
compare-and-set statements whose outcome the caller reads from `rowcount` or
RETURNING, so matching them against the session's objects would be work for nothing
on the hot path. For the same reason the statements every job or submit runs (insert,
take, outcome) are SQL text run on the session's connection (db/raw.py), without
SQLAlchemy's execution machinery around each.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from db import raw
from db.models.export import ACTIVE as EXPORT_ACTIVE
from db.models.export import Export
from db.models.job import (
    BATCH,
    CANCELED,
    EXPIRED,
    FAILED,
    QUEUED,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    TERMINAL,
    Job,
)
from db.repositories import usage as usage_repo
from db.repositories.jobs.queries import JOB_COLUMNS

WORKER_LOST = "worker_lost"


def _update():
    return update(Job).execution_options(synchronize_session=False)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0


def create(
    session: Session,
    *,
    user_id: uuid.UUID,
    tool: str,
    input: dict[str, Any],
    model: str,
    queue: str,
    expires_at: dt.datetime,
    priority: int = 0,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    webhook_url: str | None = None,
    notify_email: bool = False,
    reserved_tokens: int = 0,
    request_id: str | None = None,
    retry_of: uuid.UUID | None = None,
    dispatched: bool = False,
    run_at: dt.datetime | None = None,
    batch_id: uuid.UUID | None = None,
    batch_index: int | None = None,
    service_tier: str | None = None,
    cache_mode: str = "default",
    cached: bool = False,
    lane: str | None = None,
    deadline: dt.datetime | None = None,
) -> Any:
    """Insert a job. `dispatched`: it is admitted at once (its message is sent right
    after the commit), as admission (workers/admission.py) would mark it. `run_at`: it
    is `scheduled` until then (queue_due queues it), never sent before. The batch lane:
    `scheduled` with no `run_at`, held for workers/batch_lane/ until its `deadline`.

    One INSERT ... RETURNING in SQL (db/raw.py: every submit runs it). Returns the new
    row as a read-only named tuple of the job's columns, not an ORM `Job` (building
    and attaching one is work no submit needs): load it with `get` to change it."""
    params = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "tool": tool,
        "input": Json(input),
        "model": model,
        "queue": queue,
        "priority": priority,
        "expires_at": expires_at,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "webhook_url": webhook_url,
        "notify_email": notify_email,
        "reserved_tokens": reserved_tokens,
        "request_id": request_id,
        "retry_of": retry_of,
        "dispatched": dispatched,
        "status": QUEUED if run_at is None and lane != BATCH else SCHEDULED,
        "run_at": run_at,
        "batch_id": batch_id,
        "batch_index": batch_index,
        "service_tier": service_tier,
        "cache_mode": cache_mode,
        "cached": cached,
        "lane": lane,
        "deadline": deadline,
    }
    return raw.fetch_one(session, _CREATE, params, named=True)


_CREATE_FIELDS = (
    "id", "user_id", "tool", "input", "model", "queue", "priority", "expires_at", "idempotency_key",
    "request_hash", "webhook_url", "notify_email", "reserved_tokens", "request_id", "retry_of",
    "status", "run_at", "batch_id", "batch_index", "service_tier", "cache_mode", "cached", "lane",
    "deadline",
)  # fmt: skip


# The names are the model's own; every value is a bound parameter.
_CREATE = raw.Prepared(
    f"INSERT INTO jobs ({', '.join(_CREATE_FIELDS)}, dispatched_at) "  # noqa: S608
    f"VALUES ({', '.join(f'%({name})s' for name in _CREATE_FIELDS)}, "
    "CASE WHEN %(dispatched)s::boolean THEN now() END) "
    f"RETURNING {', '.join(JOB_COLUMNS)}"
)


def mark_dispatched(session: Session, *, job_id: uuid.UUID) -> None:
    session.execute(_update().where(Job.id == job_id, Job.status == QUEUED).values(dispatched_at=func.now()))


# The worker's statements (take, outcome, the owner's waiting jobs) are SQL text on the
# session's connection (db/raw.py): every job runs each once.
_START = raw.Prepared(f"""
UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = coalesce(started_at, now()),
    lease_until = now() + %(lease)s::interval, updated_at = now()
WHERE id = %(job_id)s
    AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
    AND attempt < %(max_attempts)s AND expires_at > now()
RETURNING {", ".join(JOB_COLUMNS)},
    (SELECT name FROM users WHERE users.id = jobs.user_id) AS owner_name,
    (SELECT profile FROM users WHERE users.id = jobs.user_id) AS owner_profile,
    (SELECT plan FROM users WHERE users.id = jobs.user_id) AS owner_plan
""")  # noqa: S608 - the model's names; every value is bound


def start(session: raw.Executor, *, job_id: uuid.UUID, lease_seconds: int, max_attempts: int) -> Any:
    """Take the job for this delivery: queued → running, or take over a running
    job whose lease ran out (its worker died). Returns the job's row (a named tuple),
    with its owner's `owner_name` and `owner_profile` (what the prompt may use), or
    None when this delivery must not run it (finished, held by a live worker, out of
    attempts)."""
    params = {"job_id": job_id, "max_attempts": max_attempts, "lease": dt.timedelta(seconds=lease_seconds)}
    job = raw.fetch_one(session, _START, params, named=True)
    if job is not None:
        return job
    # Not startable: settle the cases that must not be left as they are.
    expire(session, job_id=job_id)
    fail_lost(session, job_id=job_id, max_attempts=max_attempts)
    return None


@dataclass(frozen=True)
class LeaseState:
    cancel_requested: bool


def renew_lease(
    session: Session, *, job_id: uuid.UUID, lease_seconds: int, progress: int | None = None
) -> LeaseState | None:
    """Extend a running job's lease; None when the job is no longer running."""
    values: dict[str, Any] = {"lease_until": func.now() + dt.timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = func.greatest(Job.progress, progress)
    row = session.execute(
        _update()
        .where(Job.id == job_id, Job.status == RUNNING)
        .values(**values)
        .returning(Job.cancel_requested_at)
    ).first()
    return None if row is None else LeaseState(cancel_requested=row.cancel_requested_at is not None)


@dataclass(frozen=True)
class Outcome:
    """How a job ends: its terminal status and what it records with it (each column left
    as it is when None). `ledger`: the attempt's provider calls, added to the usage
    ledger in the finishing statement, billed if that statement moved the job and
    `billable`. `lane`, `answered_by`, `attempts`: how the run went
    (workers/fallbacks.py)."""

    status: str
    output: dict[str, Any] | None = None
    output_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage: Usage | None = None
    ledger: usage_repo.Attempt | None = None
    billable: bool = False
    lane: str | None = None
    answered_by: str | None = None
    attempts: list[dict[str, Any]] | None = None


def finish(
    session: raw.Executor,
    *,
    job_id: uuid.UUID,
    outcome: Outcome,
    from_statuses: Sequence[str] = (RUNNING,),
) -> bool:
    """Move a job to a terminal state, once. False: it was no longer in `from_statuses`.
    The outcome's ledger is written in the same statement (so both or neither are kept,
    with no transaction of the caller's needed)."""
    columns, params = _finish_params(job_id, from_statuses, outcome)
    ledger = outcome.ledger
    if ledger is None or not ledger.calls:
        return raw.execute(session, _finish_statement(columns), params) == 1
    params |= usage_repo.attempt_params(ledger, billable=outcome.billable)
    return raw.fetch_one(session, _finish_returning_statement(columns, ledger=True), params)[0]


@dataclass(frozen=True)
class RunEnded:
    done: bool  # the outcome stands: the job was running and is now finished
    owner_waiting: uuid.UUID | None = None  # its owner, when they have jobs waiting for a slot


def finish_run(session: raw.Executor, *, job_id: uuid.UUID, outcome: Outcome) -> RunEnded:
    """`finish` for the worker that ran the job (running → terminal), which also learns in
    the same statement whether the owner has jobs waiting for the slot it frees (see
    claim_waiting): most owners have none, and then admission and its user lock are
    skipped. The look sees what was committed when the statement began, as a read just
    after the commit would see what was committed by then: a job held by a submit that
    counted this one as running and committed after the look is sent by the beat's
    admission sweep (workers.admission.admit_all_waiting), either way."""
    columns, params = _finish_params(job_id, (RUNNING,), outcome)
    ledger = outcome.ledger
    recording = ledger is not None and bool(ledger.calls)
    if recording:
        params |= usage_repo.attempt_params(ledger, billable=outcome.billable)
    row = raw.fetch_one(
        session, _finish_returning_statement(columns, ledger=recording, owner_waiting=True), params
    )
    return RunEnded(done=row[0], owner_waiting=row[1])


def _finish_params(
    job_id: uuid.UUID, from_statuses: Sequence[str], outcome: Outcome
) -> tuple[tuple[str, ...], dict[str, Any]]:
    status = outcome.status
    if status not in (SUCCEEDED, FAILED, CANCELED, EXPIRED):
        raise ValueError(f"{status!r} is not a terminal status")
    values: dict[str, Any] = {
        "status": status,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
    }
    if outcome.output is not None:
        values["output"] = Json(outcome.output)
    if outcome.output_key is not None:  # a large output went to storage (workers.outputs)
        values["output_key"] = outcome.output_key
    if status == SUCCEEDED:
        values["progress"] = 100
    if outcome.usage is not None:
        values.update(
            input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens,
            cost_micros=outcome.usage.cost_micros,
        )
    if outcome.lane is not None:
        values["lane"] = outcome.lane
    if outcome.answered_by is not None:
        values["answered_by"] = outcome.answered_by
    if outcome.attempts is not None:
        values["attempts"] = Json(outcome.attempts)
    params = {f"new_{name}": value for name, value in values.items()}
    params |= {"job_id": job_id, "from_statuses": list(from_statuses)}
    return tuple(sorted(values)), params


def _finish_sql(columns: tuple[str, ...]) -> str:
    values = "".join(f", {name} = %(new_{name})s" for name in columns)
    return (
        f"UPDATE jobs SET finished_at = now(), lease_until = NULL, updated_at = now(){values} "  # noqa: S608
        "WHERE id = %(job_id)s AND status = ANY(%(from_statuses)s::text[])"
    )


@functools.cache
def _finish_statement(columns: tuple[str, ...]) -> raw.Prepared:
    """finish()'s UPDATE for one set of columns, made once (every job ends with one)."""
    return raw.Prepared(_finish_sql(columns))


# The owner of the job just finished, if they have a job held for their running limit.
_OWNER_IF_WAITING = """(
    SELECT finished.user_id FROM finished WHERE EXISTS (
        SELECT 1 FROM jobs
        WHERE jobs.user_id = finished.user_id AND status = 'queued' AND dispatched_at IS NULL
            AND expires_at > now()
    )
)"""


@functools.cache
def _finish_returning_statement(
    columns: tuple[str, ...], *, ledger: bool, owner_waiting: bool = False
) -> raw.Prepared:
    """The UPDATE with, in the same statement, the attempt's ledger rows (`ledger`) and
    the look for the owner's waiting jobs (`owner_waiting`): whether it moved the job,
    then the owner or NULL. The count of the ledger rows recorded is read so that the
    INSERT is part of the answer."""
    parts = [f"WITH finished AS ({_finish_sql(columns)} RETURNING user_id)"]
    answer = ["EXISTS (SELECT 1 FROM finished)"]
    if owner_waiting:
        answer.append(_OWNER_IF_WAITING)
    if ledger:
        parts.append(f"recorded AS ({usage_repo.CALLS_RECORDED})")
        answer.append("(SELECT count(*) FROM recorded)")
    return raw.Prepared(", ".join(parts) + " SELECT " + ", ".join(answer))


def cancel_queued(session: Session, *, job_id: uuid.UUID) -> bool:
    """Cancel a job that has not started: queued, or scheduled for later."""
    return finish(
        session,
        job_id=job_id,
        outcome=Outcome(CANCELED, error_code="canceled", error_message="Canceled before it started."),
        from_statuses=(SCHEDULED, QUEUED),
    )


# Oldest due first; SKIP LOCKED: a second pickup running at the same moment (a deploy's
# overlap) takes other rows instead of waiting, and the status test makes each move once.
_QUEUE_DUE = raw.Prepared("""
UPDATE jobs SET status = 'queued', updated_at = now()
WHERE id IN (
    SELECT id FROM jobs WHERE status = 'scheduled' AND run_at <= now()
    ORDER BY run_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) AND status = 'scheduled'
RETURNING id, user_id
""")


def queue_due(session: raw.Executor, *, limit: int = 500) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Scheduled jobs whose `run_at` has come: scheduled → queued, waiting for admission
    like a job just submitted. Returns (job id, owner) of each job moved."""
    return [(row[0], row[1]) for row in raw.fetch_all(session, _QUEUE_DUE, {"limit": limit})]


def request_cancel(session: Session, *, job_id: uuid.UUID) -> bool:
    """Flag a running job; its worker stops the provider call and ends it `canceled`."""
    result = session.execute(
        _update()
        .where(Job.id == job_id, Job.status == RUNNING, Job.cancel_requested_at.is_(None))
        .values(cancel_requested_at=func.now())
    )
    return result.rowcount == 1


def delete_unstarted(session: Session, *, job_id: uuid.UUID) -> bool:
    """Withdraw a job that was never sent (its submit failed); only while queued."""
    result = session.execute(delete(Job).where(Job.id == job_id, Job.status == QUEUED, Job.attempt == 0))
    return result.rowcount == 1


def delete_finished(session: Session, *, job_id: uuid.UUID) -> bool:
    """Delete a finished job's row (its exports and webhook delivery go with it, by cascade;
    the usage ledger keeps its rows, which name the job without a foreign key). Refused
    while the job is not finished, or while an export of it is being built (its file
    would be written after the objects were removed)."""
    building = select(Export.id).where(Export.job_id == job_id, Export.status.in_(EXPORT_ACTIVE))
    result = session.execute(
        delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL), ~building.exists())
    )
    return result.rowcount == 1


_EXPIRE = """
UPDATE jobs SET status = 'expired', finished_at = now(), error_code = 'expired',
    error_message = 'The job was not started before its deadline.', updated_at = now()
WHERE id = %(job_id)s AND status = 'queued' AND expires_at <= now()
"""


def expire(session: raw.Executor, *, job_id: uuid.UUID) -> bool:
    return raw.execute(session, _EXPIRE, {"job_id": job_id}) == 1


_FAIL_LOST = """
UPDATE jobs SET status = 'failed', finished_at = now(), lease_until = NULL, error_code = %(code)s,
    error_message = %(message)s, updated_at = now()
WHERE id = %(job_id)s AND status = 'running' AND lease_until < now() AND attempt >= %(max_attempts)s
"""


def fail_lost(session: raw.Executor, *, job_id: uuid.UUID, max_attempts: int) -> bool:
    """A running job whose lease ran out and that has used all its attempts."""
    message = f"The worker running this job stopped {max_attempts} times; giving up."
    params = {"job_id": job_id, "max_attempts": max_attempts, "code": WORKER_LOST, "message": message}
    return raw.execute(session, _FAIL_LOST, params) == 1


def requeue_lost(session: Session, *, job_id: uuid.UUID) -> bool:
    """A running job whose lease ran out goes back to queued for another attempt."""
    result = session.execute(
        _update()
        .where(Job.id == job_id, Job.status == RUNNING, Job.lease_until < func.now())
        .values(status=QUEUED, lease_until=None, dispatched_at=None)
    )
    return result.rowcount == 1


def claim_waiting(session: Session, *, user_id: uuid.UUID, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Mark the user's oldest waiting jobs as sent; returns (id, queue) to send.
    Call with the user locked (users.lock) so two admissions cannot both fill a slot."""
    waiting = (
        select(Job.id)
        .where(
            Job.user_id == user_id,
            Job.status == QUEUED,
            Job.dispatched_at.is_(None),
            Job.expires_at > func.now(),
        )
        .order_by(Job.created_at, Job.id)
        .limit(limit)
        .scalar_subquery()
    )
    rows = session.execute(
        _update()
        .where(Job.id.in_(waiting), Job.status == QUEUED)
        .values(dispatched_at=func.now())
        .returning(Job.id, Job.queue, Job.created_at)
    ).all()
    return [(row.id, row.queue) for row in sorted(rows, key=lambda row: (row.created_at, row.id))]


def unclaim(session: Session, *, job_ids: Sequence[uuid.UUID]) -> None:
    session.execute(_update().where(Job.id.in_(job_ids), Job.status == QUEUED).values(dispatched_at=None))


def expire_overdue(session: Session) -> int:
    result = session.execute(
        _update()
        .where(Job.status == QUEUED, Job.expires_at <= func.now())
        .values(
            status=EXPIRED,
            finished_at=func.now(),
            error_code="expired",
            error_message="The job was not started before its deadline.",
        )
    )
    return result.rowcount
