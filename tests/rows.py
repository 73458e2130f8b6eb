"""Row factories the tests share."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import insert, text

from db.models import DailyJobCount, UsageCounter, UsageLedger
from db.models.job import SUCCEEDED
from db.repositories import jobs, users
from db.session import session_scope


def make_user(
    *,
    plan: str = "free",
    role: str = "user",
    verified: bool = True,
    name: str = "Ada",
    email: str | None = None,
    deleted_ago: float | None = None,
    password_hash: str = "x",
    **fields: Any,
) -> uuid.UUID:
    """A user; `deleted_ago`: seconds since they closed their account; `fields` are set on
    the row as-is."""
    with session_scope() as session:
        user = users.create(
            session,
            email=email or f"{uuid.uuid4().hex[:10]}@example.com",
            password_hash=password_hash,
            name=name,
            plan=plan,
            role=role,
            email_verified_at=dt.datetime.now(dt.UTC) if verified else None,
            **fields,
        )
        if deleted_ago is not None:
            user.deleted_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=deleted_ago)
        return user.id


def queued_job(
    user_id: uuid.UUID | None = None,
    *,
    tool: str = "text",
    input: dict[str, Any] | None = None,
    webhook_url: str | None = None,
    notify_email: bool = False,
    name: str = "T",
    profile: dict[str, Any] | None = None,
    queue: str = "ai",
    **fields: Any,
) -> uuid.UUID:
    """A queued job (for a new user unless one is given); `fields` are set on the row as-is."""
    with session_scope() as session:
        if user_id is None:
            user_id = users.create(
                session,
                email=f"{uuid.uuid4().hex}@example.com",
                password_hash="x",
                name=name,
                profile=profile or {},
            ).id
        job = jobs.create(
            session,
            user_id=user_id,
            tool=tool,
            input=input or {"prompt": "hi"},
            model="gpt-4o-mini",
            queue=queue,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            webhook_url=webhook_url,
            notify_email=notify_email,
        )
        if fields:
            loaded = jobs.get(session, job_id=job.id)
            for field, value in fields.items():
                setattr(loaded, field, value)
        return job.id


def held_jobs(user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """`count` queued jobs held for the owner's running limit (no message sent), made in
    one transaction."""
    with session_scope() as session:
        return [
            jobs.create(
                session,
                user_id=user_id,
                tool="text",
                input={"prompt": f"n{n}"},
                model="gpt-4o-mini",
                queue="ai",
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            ).id
            for n in range(count)
        ]


def running_job(user_id: uuid.UUID | None = None, **queued: Any) -> uuid.UUID:
    """A job a worker has taken (its first attempt, under a lease); `queued` as `queued_job`."""
    job_id = queued_job(user_id, **queued)
    with session_scope() as session:
        jobs.start(session, job_id=job_id, lease_seconds=60, max_attempts=3)
    return job_id


def finished_job(
    user_id: uuid.UUID | None = None,
    *,
    tool: str = "text",
    input: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    output_key: str | None = None,
    status: str = SUCCEEDED,
    error_code: str | None = None,
    tokens: tuple[int, int] = (10, 5),
    cost_micros: int = 3,
    webhook_url: str | None = None,
) -> uuid.UUID:
    """A job taken through the real transitions to a terminal status (for a new user unless
    one is given)."""
    job_id = running_job(user_id, tool=tool, input=input or {"prompt": "hello"}, webhook_url=webhook_url)
    with session_scope() as session:
        jobs.finish(
            session,
            job_id=job_id,
            outcome=jobs.Outcome(
                status,
                output=output,
                output_key=output_key,
                error_code=error_code,
                error_message="It broke." if error_code else None,
                usage=jobs.Usage(input_tokens=tokens[0], output_tokens=tokens[1], cost_micros=cost_micros),
            ),
        )
    return job_id


def usage_row(
    user_id: uuid.UUID,
    *,
    job_id: uuid.UUID | None = None,
    attempt: int = 1,
    call_index: int = 0,
    tool: str = "text",
    model: str = "gpt-4o-mini",
    tokens: tuple[int, int] = (100, 50),
    cost_micros: int = 10,
    billed: bool = True,
    at: dt.datetime | None = None,
    lane: str = "standard",
    standard_cost_micros: int | None = None,
) -> dict[str, Any]:
    """A usage ledger row (one provider call: its tokens in and out, its cost, its lane and
    its cost at standard prices when the lane is another) for `add_usage`."""
    return {
        "job_id": job_id or uuid.uuid4(),
        "attempt": attempt,
        "call_index": call_index,
        "user_id": user_id,
        "tool": tool,
        "model": model,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cost_micros": cost_micros,
        "billed": billed,
        "created_at": at or dt.datetime.now(dt.UTC),
        "lane": lane,
        "standard_cost_micros": standard_cost_micros,
    }


def add_usage(*calls: dict[str, Any]) -> None:
    """Usage ledger rows (from `usage_row`) written as the pipeline records them, in one statement."""
    with session_scope() as session:
        session.execute(insert(UsageLedger), list(calls))


def usage_counter(
    user_id: uuid.UUID, *, tokens_used: int, tokens_reserved: int = 0, period: dt.date | None = None
) -> None:
    """A user's monthly token counter, set as-is; `period`: the month's first day (this month's
    unless given)."""
    period = period or dt.datetime.now(dt.UTC).date().replace(day=1)
    with session_scope() as session:
        session.merge(
            UsageCounter(
                user_id=user_id, period=period, tokens_used=tokens_used, tokens_reserved=tokens_reserved
            )
        )


def daily_job_count(user_id: uuid.UUID, *, count: int, day: dt.date | None = None) -> None:
    """How many jobs a user has submitted on `day` (today, UTC, unless given)."""
    with session_scope() as session:
        session.add(DailyJobCount(user_id=user_id, day=day or dt.datetime.now(dt.UTC).date(), jobs=count))


def age(table: str, row_id: uuid.UUID, *, days: float, columns: tuple[str, ...]) -> None:
    """Move a row's timestamps `days` into the past."""
    sets = ", ".join(f"{column} = {column} - make_interval(secs => :seconds)" for column in columns)
    with session_scope() as session:
        session.execute(
            text(f"UPDATE {table} SET {sets} WHERE id = :id"),  # noqa: S608 - names from the tests
            {"seconds": days * 86400, "id": row_id},
        )


def lapse_lease(job_id: uuid.UUID) -> None:
    """End a running job's lease, as if its worker had died a moment ago."""
    with session_scope() as session:
        session.execute(
            text("UPDATE jobs SET lease_until = now() - interval '1 s' WHERE id = :id"), {"id": job_id}
        )
