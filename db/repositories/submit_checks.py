"""A submit's checks, once it holds the user's lock (users.lock), in one statement.

- One more job today, unless the user already has their plan's jobs a day.
- The job's estimated tokens held against the month's quota, unless used + held would
  go over it. One conditional upsert is the whole guard: concurrent submits queue on
  the counter row and each sees the others' holds.
- The user's jobs in flight (sent to the broker, or running) and waiting (queued, not
  sent), for the admission decision. Counted after the lock was taken (this is the
  statement after it), so two submits of a user never both take the last slot.

A part refused reads as None; the caller then rolls back, which undoes the other part
too. A commit keeps both until the job settles its hold (the `jobs_settle_usage`
trigger). SQL text on the session's connection (db/raw.py): it runs on every submit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from db import raw
from db.repositories.usage import Quota


@dataclass(frozen=True)
class Slots:
    in_flight: int  # sent to the broker or running
    waiting: int  # queued, not sent: they wait for a slot


@dataclass(frozen=True)
class Checked:
    jobs_today: int | None  # with this one; None: the day's limit was reached
    quota: Quota | None  # with this hold; None: the hold would go over the month's quota
    slots: Slots


_CHECK = raw.Prepared("""
WITH counted AS (
    INSERT INTO daily_job_counts (user_id, day, jobs)
    VALUES (%(user_id)s, CAST(timezone('UTC', now()) AS DATE), 1)
    ON CONFLICT (user_id, day) DO UPDATE SET jobs = daily_job_counts.jobs + 1
    WHERE daily_job_counts.jobs < %(jobs_limit)s
    RETURNING jobs
), held AS (
    INSERT INTO usage_counters (user_id, period, tokens_reserved, tokens_used)
    SELECT %(user_id)s::uuid, CAST(date_trunc('month', timezone('UTC', now())) AS DATE),
        %(estimate)s::bigint, 0
    WHERE %(estimate)s::bigint <= %(token_limit)s::bigint
    ON CONFLICT (user_id, period) DO UPDATE
    SET tokens_reserved = usage_counters.tokens_reserved + %(estimate)s, updated_at = now()
    WHERE usage_counters.tokens_used + usage_counters.tokens_reserved + %(estimate)s <= %(token_limit)s
    RETURNING tokens_used, tokens_reserved, period
)
SELECT (SELECT jobs FROM counted), held.tokens_used, held.tokens_reserved, held.period,
       slots.in_flight, slots.waiting
FROM (
    SELECT count(*) FILTER (WHERE status = 'running' OR dispatched_at IS NOT NULL) AS in_flight,
           count(*) FILTER (WHERE status = 'queued' AND dispatched_at IS NULL AND expires_at > now())
               AS waiting
    FROM jobs
    WHERE user_id = %(user_id)s AND status IN ('queued', 'running')
) AS slots
LEFT JOIN held ON true
""")


def check(
    session: Session, *, user_id: uuid.UUID, jobs_limit: int, estimate: int, token_limit: int
) -> Checked:
    """Count the job, hold its `estimate` tokens and count the user's slots, in the
    caller's transaction (the submit's, after users.lock)."""
    params = {"user_id": user_id, "jobs_limit": jobs_limit, "estimate": estimate, "token_limit": token_limit}
    jobs_today, used, reserved, period, in_flight, waiting = raw.fetch_one(session, _CHECK, params)
    quota = Quota(token_limit, used, reserved, period) if period is not None else None
    return Checked(jobs_today, quota, Slots(in_flight=in_flight, waiting=waiting))
