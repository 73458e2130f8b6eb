"""The rules for submitting, listing and canceling jobs."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import quotas, scheduling, webhooks
from api.services import response_cache as cache_lookup
from api.services.errors import OUTAGE_RETRY_AFTER, AccountClosed, Conflict, Invalid, NotFound, Unavailable
from db import raw
from db.models import Job, User
from db.models.job import BATCH, QUEUED, RUNNING, SCHEDULED, SUCCEEDED
from db.redis_client import get_redis
from db.repositories import jobs, users
from db.repositories import response_cache as cache_repo
from db.repositories.submit_checks import Slots
from db.repositories.users import Caller
from db.session import standalone
from settings import Settings
from tasks import email as email_tasks
from tasks import generation
from workers import (
    admission,
    catalogue,
    job_control,
    job_stream,
    logs,
    metrics,
    queue_position,
    response_cache,
)
from workers.catalogue import offered
from workers.plans import Plan, get_plan, queue_for
from workers.tools import all_tools, get_tool
from workers.tools.base import Tool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    job: Any  # the new row (jobs.create), or the `Job` an earlier request made
    created: bool  # False: an earlier request with the same Idempotency-Key made it


def submit(
    session: Session,
    *,
    user: User | Caller,
    settings: Settings,
    tool: str,
    input: dict[str, Any],
    model: str | None = None,
    webhook_url: str | None = None,
    notify_email: bool = False,
    idempotency_key: str | None = None,
    run_at: dt.datetime | None = None,
    delay_seconds: int | None = None,
    service_tier: str | None = None,
    cache: str = response_cache.DEFAULT,
    lane: str | None = None,
    deadline: dt.datetime | None = None,
    on_create: Callable[[Session, Any], object] | None = None,
) -> Submitted:
    """Validate, store and enqueue a job. The row is committed before the message
    is sent; if the broker refuses it, the job is withdrawn and the caller gets 503.
    `run_at` or `delay_seconds`: it is stored `scheduled` and sent when due
    (workers/scheduled_jobs.py). A `deadline` or `lane: batch`: it is stored `scheduled`
    on the batch lane (workers/batch_lane/), never sent from here. `on_create` adds rows
    that belong with the new job to its transaction (a conversation's message), before
    the job can be sent. `cache`: a job the response cache can answer is `succeeded` at
    once (`_answer`)."""
    checked = check_request(
        settings,
        tool=tool,
        input=input,
        model=model,
        webhook_url=webhook_url,
        notify_email=notify_email,
        run_at=run_at,
        delay_seconds=delay_seconds,
        service_tier=service_tier,
        cache=cache,
        lane=lane,
        deadline=deadline,
    )
    if idempotency_key is not None:
        earlier = jobs.get_by_idempotency_key(session, user_id=user.id, key=idempotency_key)
        if earlier is not None:
            return Submitted(_same_request(earlier, checked.request_hash), created=False)

    # After the replay: a retried request's run_at may have passed since its first try.
    due = scheduling.when(run_at=run_at, delay_seconds=delay_seconds)
    held_until = scheduling.batch_deadline(settings, lane=lane, deadline=deadline, scheduled=due is not None)
    plan = get_plan(user.plan)
    quotas.check_access(plan, tool=tool, model=checked.row["model"], settings=settings)
    row = {**checked.row, "run_at": due, "idempotency_key": idempotency_key}
    if held_until is not None:
        row |= {"lane": BATCH, "deadline": held_until}
    elif row.get("service_tier") is None:  # before the look-up: a flex request is keyed as flex
        row["service_tier"] = lane_for(plan, checked.definition, row["model"], settings)
    # Looked up for a job to run now: a scheduled or batch-lane one asked for its answer later.
    looks_up = due is None and held_until is None and cache == response_cache.DEFAULT
    looks_up = looks_up and response_cache.applies(checked.definition, settings)
    try:
        if looks_up:
            entry = cache_lookup.look_up(
                session,
                definition=checked.definition,
                input=input,
                model=row["model"],
                service_tier=row["service_tier"],
                user=user,
                settings=settings,
            )
            if entry is not None:
                return Submitted(
                    _answer(session, user, plan, checked.definition, settings, row, entry), created=True
                )
            on_create = _and_then(on_create, _record_miss(user, tool=tool, model=row["model"]))
        job, admitted, slots = _store(
            session, user, plan, checked.definition, settings, row, on_create=on_create
        )
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the insert.
        session.rollback()
        earlier = jobs.get_by_idempotency_key(session, user_id=user.id, key=idempotency_key or "")
        if earlier is None:
            raise
        return Submitted(_same_request(earlier, checked.request_hash), created=False)

    if looks_up:
        metrics.cache_lookup(tool=tool, hit=False)
    if admitted:
        _send(session, job)
    elif job.status == QUEUED and slots.waiting and slots.in_flight < plan.running_limit:
        job = _admit_waiting(session, job)  # older jobs wait for the free slots: they go first
    metrics.job_submitted(tool=tool, queue=job.queue)
    return Submitted(job, created=True)


@dataclass(frozen=True)
class Checked:
    """A job request whose tool, input, model and webhook URL are valid."""

    definition: Tool
    row: dict[str, Any]  # the job's own columns: tool, input, model, webhook_url, notify_email, request_hash

    @property
    def request_hash(self) -> str:
        return self.row["request_hash"]


def check_request(
    settings: Settings,
    *,
    tool: str,
    input: dict[str, Any],
    model: str | None = None,
    webhook_url: str | None = None,
    notify_email: bool = False,
    run_at: dt.datetime | None = None,
    delay_seconds: int | None = None,
    service_tier: str | None = None,
    cache: str = response_cache.DEFAULT,
    lane: str | None = None,
    deadline: dt.datetime | None = None,
) -> Checked:
    """The request's checks that need no database: 422 for an unknown tool or model, an
    input that does not suit the tool, a webhook URL a worker must not call, both
    `run_at` and `delay_seconds`, or a lane (flex, batch) the model is not sold on."""
    definition = _valid_tool(settings, tool=tool, input=input, webhook_url=webhook_url)
    model = _valid_model(settings, model or definition.default_model or settings.default_model)
    scheduling.check_one_of(run_at=run_at, delay_seconds=delay_seconds)
    _check_lane(settings, model=model, service_tier=service_tier, lane=lane, deadline=deadline)
    # Optional fields (name: value, default) join the hash only when not at their default,
    # so keys used before a field existed still match (tests/api/test_request_hash.py).
    optional: dict[str, tuple[Any, Any]] = {
        "notify_email": (notify_email, False),
        "run_at": (run_at.isoformat() if run_at else None, None),
        "delay_seconds": (delay_seconds, None),
        "lane": (lane, None),
        "deadline": (deadline.isoformat() if deadline else None, None),
        "service_tier": (service_tier, None),
        "cache": (cache, response_cache.DEFAULT),
    }
    extra = {name: value for name, (value, default) in optional.items() if value != default}
    request_hash = _request_hash(tool=tool, input=input, model=model, webhook_url=webhook_url, **extra)
    row = dict(
        tool=tool,
        input=input,
        model=model,
        webhook_url=webhook_url,
        notify_email=notify_email,
        cache_mode=cache,
    )
    if service_tier is not None:
        row["service_tier"] = service_tier
    return Checked(definition, {**row, "request_hash": request_hash})


def _valid_tool(settings: Settings, *, tool: str, input: dict[str, Any], webhook_url: str | None) -> Tool:
    """The tool's definition, once the tool exists and the input and webhook URL suit it."""
    definition = get_tool(tool)
    if definition is None:
        names = ", ".join(t.name for t in all_tools())
        raise Invalid(
            "Unknown tool.", errors={"json": {"tool": [f"Unknown tool {tool!r}. Available: {names}."]}}
        )
    if webhook_url is not None:
        webhooks.check_url(webhook_url, settings=settings)
    input_errors = definition.input_errors(input)
    if input_errors:
        raise Invalid(
            f"The input does not match the {tool!r} tool's schema (GET /api/v1/tools/{tool}).",
            errors={"json": {"input": input_errors}},
        )
    return definition


def _valid_model(settings: Settings, model: str) -> str:
    allowed = offered(settings)
    if model not in allowed:
        raise Invalid(
            "Unknown model.",
            errors={"json": {"model": [f"Unknown model {model!r}. Available: {', '.join(allowed)}."]}},
        )
    return model


def _check_lane(
    settings: Settings,
    *,
    model: str,
    service_tier: str | None,
    lane: str | None,
    deadline: dt.datetime | None,
) -> None:
    """422 for a cheaper lane the catalogue sells the model no price for (the flex
    `service_tier`, or the batch lane: `lane: batch` or a `deadline`), or for both at once."""
    batch = lane == BATCH or (lane is None and deadline is not None)
    if batch and service_tier == catalogue.FLEX:
        raise Invalid(
            "The flex tier is for a job run now, not one held for the batch lane.",
            errors={"json": {"service_tier": ["Not with the batch lane (lane: batch, or a deadline)."]}},
        )
    if batch:
        field = "lane" if lane is not None else "deadline"
        _check_sold(settings, model=model, lane=BATCH, field=field)
        provider = catalogue.get_catalogue(settings).provider_of(model)
        if provider != catalogue.OPENAI:  # the batch lane sends its files to OPENAI_BASE_URL
            raise Invalid(
                "The batch lane is not offered for this model.",
                errors={
                    "json": {
                        field: [f"The model {model!r} is served by {provider!r}, which has no Batch API."]
                    }
                },
            )
    elif service_tier == catalogue.FLEX:
        _check_sold(settings, model=model, lane=catalogue.FLEX, field="service_tier")


def _check_sold(settings: Settings, *, model: str, lane: str, field: str) -> None:
    models = catalogue.get_catalogue(settings)
    listed = models.model(model)
    if listed is not None and listed.supports(lane):
        return
    selling = [name for name, entry in models.models.items() if entry.supports(lane)]
    offered = f"Models with a {lane} lane: {', '.join(selling)}." if selling else "No model here has one."
    raise Invalid(
        f"The {lane} lane is not offered for this model.",
        errors={"json": {field: [f"The model {model!r} has no {lane} lane. {offered}"]}},
    )


def lane_for(plan: Plan, definition: Tool, model: str, settings: Settings) -> str | None:
    """The lane of a job that asked for none: the plan's background lane for a tool that is
    not interactive, when the model has it; otherwise standard (None)."""
    tier = plan.background_service_tier
    if tier is None or definition.interactive:
        return None
    listed = catalogue.get_catalogue(settings).model(model)
    return tier if listed is not None and listed.supports(tier) else None


def _store(
    session: Session,
    user: User | Caller,
    plan: Plan,
    definition: Tool,
    settings: Settings,
    row: dict[str, Any],
    *,
    on_create: Callable[[Session, Any], object] | None,
) -> tuple[Any, bool, Slots]:
    """Commit the new job: (the job, whether it is admitted at once, the user's slots).

    One transaction: the user's lock (one admission at a time), the day's count and the
    token hold, the admission decision and the row, then the message. A held job
    (`run_at`, or the batch lane) is never admitted here; a plan caps how many a user
    holds."""
    users.lock(session, user_id=user.id)
    held = row["run_at"] is not None or row.get("lane") == BATCH
    if held:
        scheduling.check_limit(session, user_id=user.id, plan=plan)
    reserved, slots = quotas.reserve(session, user=user, plan=plan, tool=definition, input=row["input"])
    admitted = not held and slots.waiting == 0 and slots.in_flight < plan.running_limit
    job = insert(
        session,
        user=user,
        plan=plan,
        definition=definition,
        settings=settings,
        row=row,
        reserved=reserved,
        dispatched=admitted,
    )
    if on_create is not None:
        on_create(session, job)
    session.commit()
    return job, admitted, slots


def _answer(
    session: Session,
    user: User | Caller,
    plan: Plan,
    definition: Tool,
    settings: Settings,
    row: dict[str, Any],
    entry: Any,
) -> Any:
    """Store the job answered from the response cache: inserted and finished `succeeded`
    in one transaction, with nothing spent and no tokens held (the day's job count still
    counts it). Its end is announced as any job's: the `done` event, and the webhook and
    email the finishing UPDATE recorded in their outboxes, sent now."""
    users.lock(session, user_id=user.id)
    quotas.reserve(session, user=user, plan=plan, tool=definition, input=row["input"], hold=False)
    job = insert(
        session,
        user=user,
        plan=plan,
        definition=definition,
        settings=settings,
        row={**row, "cached": True},
        reserved=0,
    )
    jobs.finish(
        session,
        job_id=job.id,
        outcome=jobs.Outcome(SUCCEEDED, output=entry.output, usage=jobs.Usage()),
        from_statuses=(QUEUED,),
    )
    # What the job would have cost now, at the catalogue's prices for its lane.
    saved_cost = catalogue.get_catalogue(settings).cost_micros(
        entry.model, entry.input_tokens, entry.output_tokens, lane=job.service_tier or catalogue.STANDARD
    )
    cache_repo.record_lookup(
        session,
        job_id=job.id,
        user_id=user.id,
        tool=definition.name,
        model=job.model,
        hit=entry,
        saved_cost_micros=saved_cost,
    )
    saved = dict(input_tokens=entry.input_tokens, output_tokens=entry.output_tokens, cost_micros=saved_cost)
    session.commit()
    metrics.job_submitted(tool=job.tool, queue=job.queue)
    metrics.cache_lookup(tool=job.tool, hit=True, **saved)
    metrics.job_finished(tool=job.tool, status=SUCCEEDED)
    job_stream.publish(get_redis(), job.id, job_stream.DONE, {"status": SUCCEEDED, "error": None})
    webhooks.send_now(job.id)
    email_tasks.send_for_job(job.id)
    logger.info("job_id=%s %s from the response cache", job.id, SUCCEEDED)
    return jobs.get(session, job_id=job.id)


def _record_miss(user: User | Caller, *, tool: str, model: str) -> Callable[[Session, Any], object]:
    def record(session: Session, job: Any) -> None:
        cache_repo.record_lookup(session, job_id=job.id, user_id=user.id, tool=tool, model=model, hit=None)

    return record


def _and_then(
    first: Callable[[Session, Any], object] | None, then: Callable[[Session, Any], object]
) -> Callable[[Session, Any], object]:
    def both(session: Session, job: Any) -> None:
        if first is not None:
            first(session, job)
        then(session, job)

    return both


def insert(
    session: Session,
    *,
    user: User | Caller,
    plan: Plan,
    definition: Tool,
    settings: Settings,
    row: dict[str, Any],
    reserved: int,
    dispatched: bool = False,
) -> Any:
    """Insert the job in the caller's transaction, its tokens `reserved` (quotas.reserve).
    A scheduled job's (`run_at`) start deadline counts from `run_at`; a batch-lane job's
    is its `deadline`."""
    start_from = row.get("run_at") or dt.datetime.now(dt.UTC)
    if row.get("service_tier") is None and row.get("lane") != BATCH:
        row = {**row, "service_tier": lane_for(plan, definition, row["model"], settings)}
    expires_at = row.get("deadline") or start_from + dt.timedelta(seconds=settings.job_start_deadline)
    return jobs.create(
        session,
        user_id=user.id,
        queue=queue_for(plan, definition.queue),
        priority=1 if plan.priority else 0,
        expires_at=expires_at,
        reserved_tokens=reserved,
        request_id=logs.current_request_id(),
        dispatched=dispatched,
        **row,
    )


def _send(session: Session, job: Any) -> None:
    """Send the admitted job. If the broker cannot take it, the job is withdrawn and
    the client told to retry: nothing is accepted that cannot be sent."""
    try:
        generation.dispatch(job.id, queue=job.queue)
    except Exception:
        logger.warning("job_id=%s send failed; the job is withdrawn", job.id, exc_info=True)
        _withdraw(session, job)


def _admit_waiting(session: Session, job: Any) -> Any:
    """The owner has free slots and older jobs waiting: admit the oldest (perhaps this
    one). The job as it is now."""
    admitted = admission.admit(job.user_id, send=generation.dispatch)
    if job.id in admitted.failed:
        _withdraw(session, job)
    return jobs.get(session, job_id=job.id) if job.id in admitted.sent else job


def _withdraw(session: Session, job: Any) -> None:
    jobs.delete_unstarted(session, job_id=job.id)
    session.commit()
    raise Unavailable(
        "The job queue is unavailable, so the job was not accepted. Retry in a few seconds "
        "(with the same Idempotency-Key, if you sent one).",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
    )


def get(session: Session, *, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """The caller's job (by id only: no user row is loaded); 404 for anyone else's,
    401 when the caller's account was closed."""
    return _found(session, jobs.get_for_user(session, job_id=job_id, user_id=user_id), user_id=user_id)


def read(session: raw.Executor, *, user_id: uuid.UUID, job_id: uuid.UUID) -> Any:
    """The caller's job as a read-only named tuple of its columns (a poll: it is only
    serialised), with the same 404 and 401 as `get`. SQL text only: a session, or a
    pooled connection without one (db.session.standalone)."""
    return _found(session, jobs.row_for_user(session, job_id=job_id, user_id=user_id), user_id=user_id)


def _found(session: raw.Executor, job: Any, *, user_id: uuid.UUID) -> Any:
    if job is None:
        if users.get_caller(session, user_id=user_id) is None:  # closed, or gone
            raise AccountClosed()
        raise NotFound("No job with this id.")
    return job


def list_page(
    session: Session,
    *,
    user: User,
    statuses: Sequence[str] = (),
    tool: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    after = _decode_cursor(cursor) if cursor else None
    rows = jobs.list_for_user(
        session, user_id=user.id, statuses=statuses, tool=tool, after=after, limit=limit + 1
    )
    page, more = rows[:limit], len(rows) > limit
    return page, (_encode_cursor(page[-1]) if more else None)


def cancel(session: Session, *, user: User, job_id: uuid.UUID) -> Job:
    """A queued or scheduled job is canceled at once (its quota hold is given back); a
    running one is told to stop and ends `canceled` when its worker sees the flag."""
    return cancel_job(session, get(session, user_id=user.id, job_id=job_id))


def cancel_job(session: Session, job: Job, *, actor: User | None = None) -> Job:
    """The cancel rules (workers/job_control.py), for whoever may cancel this job: its
    owner, or `actor`, an admin (audited)."""
    try:
        return job_control.cancel(
            session, job, send=generation.dispatch, announce=generation.announce_finished, actor=actor
        )
    except job_control.Refused as refused:
        raise Conflict(refused.message) from None


class Placed:
    """A job row with its place in the queue worked out once, for both its ETag and its
    body (each would otherwise ask Redis); every other attribute is the row's."""

    def __init__(self, row: Any, place: dict[str, int | None] | None) -> None:
        self._row = row
        self.queue_place = place

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def placed(job: Any) -> Any:
    """The job, with its place worked out when it is queued (else as it is)."""
    return Placed(job, queue_place(job)) if job.status == QUEUED else job


def queue_place(job: Any) -> dict[str, int | None] | None:
    """`{position, ahead, eta_seconds}` for a queued job (workers/queue_position.py);
    None once it runs, or when Redis cannot say. A few Redis reads in one round trip,
    and for a job held for its owner's running limit a count of the owner's older held
    jobs: never a scan of the queue."""
    if isinstance(job, Placed):
        return job.queue_place
    if job.status != QUEUED:
        return None
    held_ahead = None
    if job.dispatched_at is None:
        with standalone() as connection:
            held_ahead = jobs.count_held_before(
                connection, user_id=job.user_id, created_at=job.created_at, job_id=job.id
            )
    place = queue_position.place(
        get_redis(), job_id=job.id, queue=job.queue, tool=job.tool, model=job.model, held_ahead=held_ahead
    )
    return place.as_dict() if place is not None else None


def retry_after_hint(job: Job) -> int | None:
    """Seconds a poller should wait before asking again; None once it is finished."""
    if job.status == SCHEDULED:  # until it is due, within reason
        if job.run_at is None:  # the batch lane: it finishes when its batch answers
            return 60
        until_due = (job.run_at - dt.datetime.now(dt.UTC)).total_seconds()
        return min(max(int(until_due), 1), 60)
    if job.status == QUEUED:
        return 2
    if job.status == RUNNING:
        return 1
    return None


def _same_request(job: Job, request_hash: str) -> Job:
    if job.request_hash != request_hash:
        raise Invalid(
            "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new request.",
            errors={"headers": {"Idempotency-Key": ["Already used with a different body."]}},
        )
    return job


def _request_hash(**fields: Any) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, job_id = raw.split("|")
        return dt.datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid(
            "The cursor is not valid.",
            errors={"query": {"cursor": ["Pass next_cursor from the previous page unchanged."]}},
        ) from None
