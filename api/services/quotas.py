"""What a plan lets a user submit: its tools and models (403 otherwise), its monthly
token quota (402) and its jobs per day (429); smaller until the user's email is
verified (workers.plans.allowance), and the refusal then says how to verify."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from api.services.errors import Forbidden, PaymentRequired, TooManyRequests
from db.models import User
from db.repositories import submit_checks, usage
from db.repositories.submit_checks import Slots
from db.repositories.users import Caller
from settings import Settings
from workers import metering
from workers.plans import Plan, allowance, allows_model, allows_tool, cheapest_plan_where
from workers.tools.base import Tool


def check_access(plan: Plan, *, tool: str, model: str, settings: Settings) -> None:
    """403 for a tool or model the plan does not include, naming the plan that does."""
    if not allows_tool(plan, tool):
        raise _upgrade(plan, f"The {tool} tool", cheapest_plan_where(lambda p: allows_tool(p, tool)))
    if not allows_model(plan, model, settings):
        needed = cheapest_plan_where(lambda p: allows_model(p, model, settings))
        raise _upgrade(plan, f"The model {model!r}", needed)


def reserve(
    session: Session,
    *,
    user: User | Caller,
    plan: Plan,
    tool: Tool,
    input: dict[str, Any],
    undo: Callable[[], object] | None = None,
    hold: bool = True,
) -> tuple[int, Slots]:
    """Count the job against today's jobs, hold its estimated tokens against the
    month's quota and count the user's slots, in the caller's transaction (the one
    that locked the user and inserts the job), in one statement. Returns the tokens
    held and the slots. On refusal the caller's transaction is rolled back (the day's
    limit is reported first when both are reached); `undo` rolls back less (a batch's
    savepoint for one item). `hold=False`: count the job but hold no tokens (a job the
    response cache answers spends none)."""
    undo = undo or session.rollback
    profile = {"name": user.name, **(user.profile or {})}
    estimate = metering.estimate_job_tokens(tool, input, profile) if hold else 0
    allowed = allowance(plan, email_verified=user.email_verified)
    checked = submit_checks.check(
        session,
        user_id=user.id,
        jobs_limit=allowed.jobs_per_day,
        estimate=estimate,
        token_limit=allowed.monthly_tokens,
    )
    if checked.jobs_today is None:
        jobs_today = usage.jobs_today(session, user_id=user.id)
        undo()
        raise TooManyRequests(
            _refusal(
                plan,
                allowed,
                f"allows {allowed.jobs_per_day} jobs a day and you have submitted {jobs_today} today",
                otherwise="More can be submitted after midnight UTC, or on a bigger plan.",
            ),
            errors={"jobs_per_day": {"limit": allowed.jobs_per_day, "used": jobs_today}},
            headers={"Retry-After": str(_seconds_to_midnight_utc())},
        )
    if checked.quota is None:
        quota = usage.get_quota(session, user_id=user.id, limit=allowed.monthly_tokens)
        undo()
        raise PaymentRequired(
            _refusal(
                plan,
                allowed,
                f"allows {quota.limit} tokens a month; this job may use up to {estimate} and only "
                f"{quota.remaining} are left",
                otherwise=f"The quota resets on {_next_period(quota.period).isoformat()}; "
                "a bigger plan has more (GET /api/v1/billing/plans).",
            ),
            errors={"quota": quota_body(quota) | {"requested": estimate}},
        )
    return estimate, checked.slots


def _refusal(plan: Plan, allowed: Plan, limit: str, *, otherwise: str) -> str:
    """Say which limit was reached and what lifts it: verifying the email, when the
    smaller allowance of an unverified account is what was reached."""
    if allowed is plan:
        return f"The {plan.name} plan {limit}. {otherwise}"
    return (
        f"Until your email address is verified, your account {limit}. Verify it and the "
        f"{plan.name} plan's full allowance ({plan.jobs_per_day} jobs a day, {plan.monthly_tokens} "
        "tokens a month) applies at once: open the link in the email sent when you registered, "
        "or ask for a new one with POST /api/v1/auth/verify-email."
    )


def quota_body(quota: usage.Quota) -> dict[str, Any]:
    """The quota as clients read it, in a 402 and in GET /usage."""
    return {
        "limit": quota.limit,
        "used": quota.used,
        "reserved": quota.reserved,
        "remaining": quota.remaining,
        "period_start": quota.period.isoformat(),
        "resets_on": _next_period(quota.period).isoformat(),
    }


def _upgrade(plan: Plan, what: str, needed: Plan | None) -> Forbidden:
    if needed is None:
        return Forbidden(f"{what} is not available on any plan.")
    return Forbidden(
        f"{what} needs the {needed.name} plan or higher; you are on {plan.name}.",
        errors={"plan": {"current": plan.name, "required": needed.name}},
    )


def _next_period(period: dt.date) -> dt.date:
    return (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _seconds_to_midnight_utc() -> int:
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(1, int((midnight - now).total_seconds()))
