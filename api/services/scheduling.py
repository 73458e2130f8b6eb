"""When a submitted job may run: now, or at its `run_at` or after its `delay_seconds`
(workers/scheduled_jobs.py holds it in Postgres until then), and how many such jobs a
plan lets a user hold at once."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from api.services.errors import Invalid, TooManyRequests
from db.repositories import jobs
from workers.plans import Plan
from workers.scheduled_jobs import MAX_AHEAD

MAX_DELAY_SECONDS = int(MAX_AHEAD.total_seconds())


def check_one_of(*, run_at: dt.datetime | None, delay_seconds: int | None) -> None:
    if run_at is not None and delay_seconds is not None:
        raise Invalid(
            "Send run_at or delay_seconds, not both.",
            errors={"json": {"delay_seconds": ["Not with run_at: send one of the two."]}},
        )


def when(*, run_at: dt.datetime | None, delay_seconds: int | None) -> dt.datetime | None:
    """The time the job is due, or None to queue it now. 422 naming `run_at` for a time
    that has passed or is more than MAX_AHEAD away (the schema checks delay_seconds)."""
    check_one_of(run_at=run_at, delay_seconds=delay_seconds)
    now = dt.datetime.now(dt.UTC)
    if delay_seconds is not None:
        return now + dt.timedelta(seconds=delay_seconds)
    if run_at is None:
        return None
    if run_at <= now:
        raise Invalid(
            "run_at has already passed.",
            errors={
                "json": {"run_at": [f"Must be in the future; it is now {_iso(now)}. Omit it to run now."]}
            },
        )
    if run_at > now + MAX_AHEAD:
        raise Invalid(
            f"run_at is more than {MAX_AHEAD.days} days ahead.",
            errors={
                "json": {"run_at": [f"Must be at most {MAX_AHEAD.days} days ahead: {_iso(now + MAX_AHEAD)}."]}
            },
        )
    return run_at


def check_limit(session: Session, *, user_id: uuid.UUID, plan: Plan) -> None:
    """429 when the user already holds their plan's scheduled jobs. Call with the user
    locked (users.lock), so two submits cannot both take the last place; on refusal the
    caller's transaction is rolled back."""
    held = jobs.count_scheduled(session, user_id=user_id)
    if held < plan.scheduled_limit:
        return
    session.rollback()
    raise TooManyRequests(
        f"The {plan.name} plan allows {plan.scheduled_limit} scheduled jobs at once and you have "
        f"{held}. Schedule more once some have run, cancel one you no longer need, or move to a "
        "bigger plan (GET /api/v1/billing/plans).",
        errors={"scheduled_limit": {"limit": plan.scheduled_limit, "scheduled": held}},
    )


def _iso(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0).isoformat()
