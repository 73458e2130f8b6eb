"""The admins' daily report: yesterday's jobs, failures, tokens, cost and queue
latency, emailed to every admin once a day."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from db.repositories import reports
from db.session import session_scope
from workers.mail import outbox


def build_report(session, *, day: dt.date) -> dict[str, Any]:
    """Jobs created on `day` (UTC): by tool and status, failures by code, tokens,
    cost, and queue latency (submit to start) p50/p95."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    window = {"start": start, "end": start + dt.timedelta(days=1)}
    by_tool = reports.jobs_by_tool_and_status(session, **window)
    tokens_in, tokens_out, cost = reports.usage_totals(session, **window)
    p50, p95 = reports.queue_latency(session, **window)
    return {
        "date": day.isoformat(),
        "jobs_total": sum(sum(statuses.values()) for statuses in by_tool.values()),
        "jobs_by_tool": by_tool,
        "failures_by_code": reports.failures_by_code(session, **window),
        "tokens": {"input": tokens_in, "output": tokens_out},
        "cost_micros": cost,
        "queue_latency_seconds": {"p50": p50, "p95": p95},
    }


def send_daily_report(*, day: dt.date | None = None) -> list[uuid.UUID]:
    """Queue yesterday's report (UTC) to every admin; returns the emails queued.
    The dedupe key `daily_report:<date>:<admin id>` makes a second run queue none."""
    day = day or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with session_scope() as session:
        report = build_report(session, day=day)
        queued = [
            outbox.enqueue(
                session,
                to=admin.email,
                template="daily_report",
                context={"report": report},
                dedupe_key=f"daily_report:{day.isoformat()}:{admin.id}",
            )
            for admin in reports.admins(session)
        ]
    return [email_id for email_id in queued if email_id is not None]
