"""When a submitted job may run: now, or at its `run_at` or after its `delay_seconds`
(workers/scheduled_jobs.py holds it in Postgres until then), or by its `deadline` on
the batch lane (workers/batch_lane/), and how many such jobs a plan lets a user hold
at once."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from api.services.errors import Invalid, TooManyRequests
from db.models.job import BATCH, STANDARD
from db.repositories import jobs
from settings import Settings
from workers.batch_lane import WINDOW
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


# How far ahead a deadline may be: its quota is held all that time, and a batch
# answers within a day.
MAX_DEADLINE_AHEAD = dt.timedelta(days=7)


def batch_deadline(
    settings: Settings,
    *,
    lane: str | None,
    deadline: dt.datetime | None,
    scheduled: bool,
) -> dt.datetime | None:
    """The deadline of a job for the batch lane, or None for the standard lane. A
    `deadline` chooses the batch lane; `lane: batch` without one gets the provider's
    completion window. 422 naming the field for a deadline nearer than
    BATCH_LANE_MIN_DEADLINE or further than MAX_DEADLINE_AHEAD, a deadline with
    `lane: standard`, the batch lane with `run_at`/`delay_seconds`, or the batch lane
    on a provider without a Batch API."""
    if deadline is None and lane != BATCH:
        return None
    if lane == STANDARD:
        raise Invalid(
            "A deadline is for the batch lane.",
            errors={"json": {"lane": ["With a deadline the lane is batch: omit lane or send lane: batch."]}},
        )
    if scheduled:
        raise Invalid(
            "The batch lane runs a job by its deadline, not at a set time.",
            errors={"json": {"deadline": ["Not with run_at or delay_seconds: send one or the other."]}},
        )
    if settings.ai_provider != "openai":
        raise Invalid(
            "The batch lane needs a provider with a Batch API.",
            errors={"json": {"lane": [f"Not available with AI_PROVIDER={settings.ai_provider}."]}},
        )
    now = dt.datetime.now(dt.UTC)
    if deadline is None:
        return now + WINDOW
    nearest = now + dt.timedelta(seconds=settings.batch_lane_min_deadline)
    if deadline < nearest:
        minutes = settings.batch_lane_min_deadline // 60
        raise Invalid(
            f"The deadline is less than {minutes} minutes away.",
            errors={
                "json": {
                    "deadline": [
                        f"Must be at least {minutes} minutes ahead ({_iso(nearest)} or later); "
                        "omit it to run the job now."
                    ]
                }
            },
        )
    if deadline > now + MAX_DEADLINE_AHEAD:
        raise Invalid(
            f"The deadline is more than {MAX_DEADLINE_AHEAD.days} days ahead.",
            errors={
                "json": {
                    "deadline": [
                        f"Must be at most {MAX_DEADLINE_AHEAD.days} days ahead: "
                        f"{_iso(now + MAX_DEADLINE_AHEAD)}."
                    ]
                }
            },
        )
    return deadline


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
