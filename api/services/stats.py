"""GET /admin/stats: what operators ask of the jobs in a time range (which tool fails
most, how long jobs wait and run, what each model costs, what users think of each
tool), from Postgres in four aggregate queries (db/repositories/job_stats.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from api.services import response_cache
from db.models.job import FAILED, STATUSES, TERMINAL
from db.repositories import job_stats


def stats(session: Session, *, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    counts = job_stats.counts(session, start=start, end=end)
    finished = sum(counts.by_status.get(status, 0) for status in TERMINAL)
    failed = counts.by_status.get(FAILED, 0)
    return {
        "from": start,
        "to": end,
        "jobs": {
            "total": sum(counts.by_status.values()),
            "by_status": {status: counts.by_status.get(status, 0) for status in STATUSES},
            "by_tool": counts.by_tool,
            "by_model": counts.by_model,
        },
        "failures": {
            "finished": finished,
            "failed": failed,
            "rate": _rate(failed, finished),
            "by_code": [
                {"code": code, "jobs": jobs, "rate": _rate(jobs, finished)}
                for code, jobs in job_stats.failures(session, start=start, end=end)
            ],
        },
        "tools": [
            {
                "tool": row.tool,
                "jobs": row.jobs,
                "queue_wait_seconds": _percentiles(row.wait),
                "run_seconds": _percentiles(row.run),
                "feedback": {"up": row.up, "down": row.down},
            }
            for row in job_stats.per_tool(session, start=start, end=end)
        ],
        "models": [row._asdict() for row in job_stats.per_model(session, start=start, end=end)],
        "lanes": [row._asdict() for row in job_stats.per_lane(session, start=start, end=end)],
        "cache": response_cache.savings(session, start=start, end=end),
    }


def _rate(part: int, whole: int) -> float | None:
    """A share of the finished jobs (0 to 1), None when none finished."""
    return round(part / whole, 4) if whole else None


def _percentiles(values: list[float] | None) -> dict[str, float | None]:
    p50, p95 = values if values else (None, None)
    return {"p50": _seconds(p50), "p95": _seconds(p95)}


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
