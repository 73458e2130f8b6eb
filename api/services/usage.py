"""What a user has used: their billed usage over a range of days, and their quota."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from api.services import response_cache
from api.services.quotas import quota_body
from db.models import User
from db.repositories import usage
from workers.plans import allowance, get_plan


def report(
    session: Session,
    *,
    user: User,
    start: dt.date,
    end: dt.date,
    group_by: str = "day",
) -> dict[str, Any]:
    """Billed usage from `start` to `end` (UTC days, both included), grouped by day,
    tool or model; with the totals and this month's quota (the smaller one until the
    email is verified)."""
    plan = get_plan(user.plan)
    allowed = allowance(plan, email_verified=user.email_verified)
    quota = usage.get_quota(session, user_id=user.id, limit=allowed.monthly_tokens)
    since, until = _midnight(start), _midnight(end + dt.timedelta(days=1))
    items, totals = usage.summarize(session, user_id=user.id, start=since, end=until, group_by=group_by)
    return {
        "group_by": group_by,
        "items": items,
        "totals": totals,
        "quota": quota_body(quota),
        "period": {"from_": start, "to": end},
        "plan": plan.name,
        "cache": response_cache.savings(session, start=since, end=until, user_id=user.id),
    }


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
