"""The rules for batches: many jobs in one request (POST /jobs/batch), followed and
canceled as one.

Each item goes through the steps of a single submit (api/services/jobs.py: the request's
checks, the plan's access, the idempotency key, the day's jobs and the token hold) and
gets its own answer, the job or the error POST /jobs would have given it. The new jobs
are stored in one transaction, under the user's lock like any submit, each item's
reservation in a savepoint of its own so that a refused item leaves the others in place;
they are then sent as the plan's running limit allows (workers/admission.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from api.services import jobs as job_rules
from api.services import quotas, webhooks
from api.services.errors import DomainError, Invalid, NotFound
from db.models import Batch, User
from db.models.job import CANCELED
from db.redis_client import get_redis
from db.repositories import batches, jobs, users
from db.repositories.users import Caller
from settings import Settings
from tasks import email as email_tasks
from tasks import generation
from tasks import webhooks as webhook_tasks
from workers import admission, cancellation, job_stream, metrics
from workers.plans import get_plan

ACTIVE = "active"  # some of its jobs can still move
FINISHED = "finished"  # every job has ended (or it has none)


@dataclass(frozen=True)
class Item:
    """One item's answer: its job, or the error POST /jobs would have answered."""

    index: int
    job: Any = None
    error: DomainError | None = None


@dataclass
class BatchView:
    """A batch as clients read it: the row, its jobs' counts, and perhaps a page of them."""

    id: uuid.UUID
    counts: dict[str, int]
    webhook_url: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    jobs: list[Any] = field(default_factory=list)
    next_cursor: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def status(self) -> str:
        return FINISHED if self.finished_at is not None else ACTIVE


@dataclass(frozen=True)
class Submitted:
    batch: BatchView
    items: list[Item]
    created: bool  # False: a retry whose every job an earlier batch made; that batch


def submit(
    session: Session,
    *,
    user: User | Caller,
    settings: Settings,
    items: Sequence[dict[str, Any] | DomainError],
    webhook_url: str | None = None,
) -> Submitted:
    """Check, store and send the items' jobs; every item gets its own answer. `items` are
    the parsed items, or the error an item's parsing gave."""
    if webhook_url is not None:
        webhooks.check_url(webhook_url, settings=settings)
    answers: dict[int, Item] = {}
    checked: dict[int, tuple[job_rules.Checked, str | None]] = {}
    keys_seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            checked[index] = _checked(settings, item, keys_seen)
        except DomainError as error:
            answers[index] = Item(index, error=error)

    plan = get_plan(user.plan)
    users.lock(session, user_id=user.id)  # one admission at a time, and no key taken meanwhile
    keys = [key for _, key in checked.values() if key is not None]
    earlier = jobs.by_idempotency_keys(session, user_id=user.id, keys=keys)
    new: dict[int, tuple[job_rules.Checked, str | None]] = {}
    for index, (request, key) in checked.items():
        try:
            if key is not None and key in earlier:
                answers[index] = Item(index, job=_same_request(earlier[key], request))
                continue
            quotas.check_access(plan, tool=request.row["tool"], model=request.row["model"], settings=settings)
            new[index] = (request, key)
        except DomainError as error:
            answers[index] = Item(index, error=error)

    replayed_batches = {item.job.batch_id for item in answers.values() if item.job is not None}
    if not new and len(replayed_batches) == 1 and None not in replayed_batches:
        session.rollback()  # nothing to store: the retry of a batch that made every job
        return Submitted(
            _view(session, batches.get(session, batch_id=replayed_batches.pop())), _ordered(answers), False
        )

    batch = batches.create(session, user_id=user.id, webhook_url=webhook_url)
    for index, (request, key) in new.items():
        answers[index] = _store(session, user, plan, settings, batch, index, request, key)
    made = [item.job for item in answers.values() if item.job is not None and item.job.batch_id == batch.id]
    if not made:
        batches.finish_if_done(session, batch_id=batch.id)  # none of its jobs can move: it is finished
    session.commit()
    for job in made:
        metrics.job_submitted(tool=job.tool, queue=job.queue)
    if made:
        admission.admit(user.id, send=generation.dispatch)
    else:
        session.refresh(batch)  # finished_at, set by the database
        webhook_tasks.deliver_for_batch(batch.id)
    return Submitted(_view(session, batch), _ordered(answers), True)


def _checked(
    settings: Settings, item: dict[str, Any] | DomainError, keys_seen: set[str]
) -> tuple[job_rules.Checked, str | None]:
    if isinstance(item, DomainError):
        raise item
    key = item.get("idempotency_key")
    if key is not None:
        if key in keys_seen:
            raise Invalid(
                "An earlier item of this batch has the same idempotency_key; give each job its own.",
                errors={"json": {"idempotency_key": ["Used by an earlier item of this batch."]}},
            )
        keys_seen.add(key)
    names = ("tool", "input", "model", "webhook_url", "notify_email", "service_tier", "cache")
    fields = {name: item[name] for name in names if name in item}
    return job_rules.check_request(settings, **fields), key


def _same_request(job: Any, request: job_rules.Checked) -> Any:
    if job.request_hash != request.request_hash:
        raise Invalid(
            "This idempotency_key was already used with a different job; use a new key for a new job.",
            errors={"json": {"idempotency_key": ["Already used with a different job."]}},
        )
    return job


def _store(
    session: Session,
    user: User | Caller,
    plan: Any,
    settings: Settings,
    batch: Batch,
    index: int,
    request: job_rules.Checked,
    key: str | None,
) -> Item:
    """Reserve and insert one item's job; a refusal (402, 429) undoes only its savepoint."""
    savepoint = session.begin_nested()
    try:
        reserved, _slots = quotas.reserve(
            session,
            user=user,
            plan=plan,
            tool=request.definition,
            input=request.row["input"],
            undo=savepoint.rollback,
        )
    except DomainError as error:
        return Item(index, error=error)
    savepoint.commit()
    row = {**request.row, "idempotency_key": key, "batch_id": batch.id, "batch_index": index}
    job = job_rules.insert(
        session,
        user=user,
        plan=plan,
        definition=request.definition,
        settings=settings,
        row=row,
        reserved=reserved,
    )
    return Item(index, job=job)


def _ordered(answers: dict[int, Item]) -> list[Item]:
    return [answers[index] for index in sorted(answers)]


def get(
    session: Session, *, user_id: uuid.UUID, batch_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> BatchView:
    """The caller's batch with its counts and a page of its jobs in item order; 404 for
    anyone else's."""
    view = _view(session, _found(session, user_id=user_id, batch_id=batch_id))
    after = _decode_cursor(cursor) if cursor else None
    rows = batches.jobs_page(session, batch_id=batch_id, after=after, limit=limit + 1)
    view.jobs = rows[:limit]
    if len(rows) > limit:
        view.next_cursor = _encode_cursor(view.jobs[-1].batch_index)
    return view


def list_page(
    session: Session, *, user_id: uuid.UUID, limit: int = 20, cursor: str | None = None
) -> tuple[list[BatchView], str | None]:
    """The caller's batches, newest first, each with its jobs' counts (one query for the
    page's counts, not one per batch)."""
    after = _decode_list_cursor(cursor) if cursor else None
    rows = batches.list_for_user(session, user_id=user_id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    counts = batches.counts(session, batch_ids=[batch.id for batch in page])
    views = [_view(session, batch, counts=counts[batch.id]) for batch in page]
    return views, (_encode_list_cursor(page[-1]) if more else None)


def cancel(session: Session, *, user_id: uuid.UUID, batch_id: uuid.UUID) -> BatchView:
    """Cancel every job of the batch that has not finished: queued ones at once (in one
    statement), running ones told to stop (they end `canceled` when their worker sees it)."""
    _found(session, user_id=user_id, batch_id=batch_id)
    canceled = batches.cancel_queued(session, batch_id=batch_id)
    running = batches.request_cancel(session, batch_id=batch_id)
    session.commit()
    redis = get_redis()
    error = {"code": "canceled", "message": "Canceled before it started."}
    for job in canceled:
        metrics.job_finished(tool=job.tool, status=CANCELED, code="canceled")
        job_stream.publish(redis, job.id, job_stream.DONE, {"status": CANCELED, "error": error})
        if job.webhook_url is not None:
            webhooks.send_now(job.id)
        if job.notify_email:
            email_tasks.send_for_job(job.id)
    for job_id in running:
        cancellation.request(redis, job_id)
    if canceled:
        admission.admit(user_id, send=generation.dispatch)  # they may have held slots
        webhook_tasks.deliver_for_batch(batch_id)
    session.expire_all()
    return _view(session, _found(session, user_id=user_id, batch_id=batch_id))


def _found(session: Session, *, user_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    batch = batches.get_for_user(session, batch_id=batch_id, user_id=user_id)
    if batch is None:
        raise NotFound("No batch with this id.")
    return batch


def _view(session: Session, batch: Batch | None, *, counts: dict[str, int] | None = None) -> BatchView:
    if batch is None:
        raise NotFound("No batch with this id.")
    if counts is None:
        counts = batches.counts(session, batch_ids=[batch.id])[batch.id]
    return BatchView(
        id=batch.id,
        counts=counts,
        webhook_url=batch.webhook_url,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
    )


def _encode_list_cursor(batch: Batch) -> str:
    raw = f"{batch.created_at.isoformat()}|{batch.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_list_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, batch_id = raw.split("|")
        return dt.datetime.fromisoformat(created_at), uuid.UUID(batch_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None


def _bad_cursor() -> Invalid:
    return Invalid(
        "The cursor is not valid.",
        errors={"query": {"cursor": ["Pass next_cursor from the previous page unchanged."]}},
    )


def _encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None
