"""The operators' numbers over a time range (GET /admin/stats): a few aggregate queries
over `jobs` (by `created_at`, ix_jobs_created) and the usage ledger (by `created_at`,
ix_usage_ledger_created), so a dashboard can ask often. Jobs count in the range they
were submitted in; provider calls in the range they were made in (the ledger keeps
deleted jobs' calls, so cost stays whole)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

_COUNTS = text("""
SELECT GROUPING(status) = 0 AS by_status, GROUPING(tool) = 0 AS by_tool,
       coalesce(status, tool, model) AS key, count(*) AS jobs
FROM jobs WHERE created_at >= :start AND created_at < :end
GROUP BY GROUPING SETS ((status), (tool), (model))
""")

_FAILURES = text("""
SELECT coalesce(error_code, 'unknown') AS code, count(*) AS jobs
FROM jobs WHERE created_at >= :start AND created_at < :end AND status = 'failed'
GROUP BY 1 ORDER BY 2 DESC, 1
""")

# Queue wait: submit to start (the last attempt's start, for a job run again); run time:
# start to finish, for jobs that started. Seconds, continuous percentiles.
_PER_TOOL = text("""
SELECT tool, count(*) AS jobs,
       percentile_cont(ARRAY[0.5, 0.95])
           WITHIN GROUP (ORDER BY extract(epoch FROM started_at - coalesce(run_at, created_at)))
           FILTER (WHERE started_at IS NOT NULL) AS wait,
       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           FILTER (WHERE started_at IS NOT NULL AND finished_at IS NOT NULL) AS run,
       count(*) FILTER (WHERE feedback_rating = 'up') AS up,
       count(*) FILTER (WHERE feedback_rating = 'down') AS down
FROM jobs WHERE created_at >= :start AND created_at < :end
GROUP BY tool ORDER BY tool
""")

_PER_MODEL = text("""
SELECT model, count(*) AS calls, count(DISTINCT job_id) AS jobs,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cost_micros) AS cost_micros,
       coalesce(sum(cost_micros) FILTER (WHERE billed), 0) AS billed_cost_micros
FROM usage_ledger WHERE created_at >= :start AND created_at < :end
GROUP BY model ORDER BY model
""")

_PER_LANE = text("""
SELECT lane, count(*) AS calls, count(DISTINCT job_id) AS jobs,
       sum(cost_micros) AS cost_micros,
       sum(coalesce(standard_cost_micros, cost_micros)) AS standard_cost_micros,
       greatest(sum(coalesce(standard_cost_micros, cost_micros)) - sum(cost_micros), 0) AS saved_micros
FROM usage_ledger WHERE created_at >= :start AND created_at < :end
GROUP BY lane ORDER BY lane
""")


@dataclass(frozen=True)
class Counts:
    by_status: dict[str, int]
    by_tool: dict[str, int]
    by_model: dict[str, int]


def counts(session: Session, *, start: dt.datetime, end: dt.datetime) -> Counts:
    found = Counts({}, {}, {})
    for row in session.execute(_COUNTS, {"start": start, "end": end}):
        group = found.by_status if row.by_status else found.by_tool if row.by_tool else found.by_model
        group[row.key] = row.jobs
    return found


def failures(session: Session, *, start: dt.datetime, end: dt.datetime) -> list[tuple[str, int]]:
    return [(row.code, row.jobs) for row in session.execute(_FAILURES, {"start": start, "end": end})]


def per_tool(session: Session, *, start: dt.datetime, end: dt.datetime) -> list:
    """Rows of (tool, jobs, wait [p50, p95] | None, run [p50, p95] | None, up, down)."""
    return list(session.execute(_PER_TOOL, {"start": start, "end": end}))


def per_lane(session: Session, *, start: dt.datetime, end: dt.datetime) -> list:
    """Rows of (lane, calls, jobs, cost_micros, standard_cost_micros, saved_micros)."""
    return list(session.execute(_PER_LANE, {"start": start, "end": end}))


def per_model(session: Session, *, start: dt.datetime, end: dt.datetime) -> list:
    """Rows of (model, calls, jobs, input_tokens, output_tokens, cost_micros, billed_cost_micros)."""
    return list(session.execute(_PER_MODEL, {"start": start, "end": end}))
