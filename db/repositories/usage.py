"""Quota counters, the usage ledger and the daily roll-up.

The month and the day are the database's (`now()` in UTC), never the web
server's: a job's reservation lives in the month of its `created_at`, which is the
same `now()` of the transaction that reserved it, and that is where the
`jobs_settle_usage` trigger looks for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Date,
    Integer,
    cast,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.usage import DailyJobCount, UsageCounter, UsageDaily, UsageLedger

_utc_now = func.timezone("UTC", func.now())
CURRENT_PERIOD = cast(func.date_trunc("month", _utc_now), Date)
TODAY = cast(_utc_now, Date)
GROUPS = ("day", "tool", "model")


@dataclass(frozen=True)
class Quota:
    limit: int
    used: int
    reserved: int
    period: dt.date

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used - self.reserved)


def get_quota(session: Session, *, user_id: uuid.UUID, limit: int) -> Quota:
    row = session.execute(
        select(UsageCounter.tokens_used, UsageCounter.tokens_reserved, CURRENT_PERIOD.label("period")).where(
            UsageCounter.user_id == user_id, UsageCounter.period == CURRENT_PERIOD
        )
    ).first()
    if row is None:
        return Quota(limit, 0, 0, session.scalar(select(CURRENT_PERIOD)))
    return Quota(limit, row.tokens_used, row.tokens_reserved, row.period)


def jobs_today(session: Session, *, user_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(DailyJobCount.jobs).where(DailyJobCount.user_id == user_id, DailyJobCount.day == TODAY)
        )
        or 0
    )


# ---------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class Call:
    """One provider call, as the ledger records it."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int


@dataclass(frozen=True)
class Attempt:
    """The provider calls one attempt of a job made, priced, ready for the ledger
    (recorded with the attempt's outcome: jobs.finish)."""

    job_id: uuid.UUID
    attempt: int
    user_id: uuid.UUID
    tool: str
    calls: Sequence[Call]
    lane: str = "standard"  # or "batch": the calls were priced at the Batch API's rate


# An attempt's calls as arrays, one element per call: one statement however many calls.
# A part of the statement that records the attempt's outcome (jobs.finish): `finished` is
# that UPDATE ... RETURNING as a CTE. The calls are billed if it changed the job and the
# caller says the status is billed (a late or second delivery's calls are kept,
# unbilled); recording an attempt again adds nothing. SQL text (db/raw.py): every job
# ends with it.
CALLS_RECORDED = """
INSERT INTO usage_ledger (
    job_id, attempt, call_index, user_id, tool, model, input_tokens, output_tokens, cost_micros, billed,
    lane
)
SELECT %(job_id)s::uuid, %(ledger_attempt)s::integer, calls.position - 1, %(ledger_user_id)s::uuid,
       %(ledger_tool)s::text, calls.model, calls.input_tokens, calls.output_tokens, calls.cost_micros,
       %(ledger_billable)s::boolean AND EXISTS (SELECT 1 FROM finished), %(ledger_lane)s::text
FROM unnest(
    %(ledger_models)s::text[], %(ledger_input_tokens)s::bigint[],
    %(ledger_output_tokens)s::bigint[], %(ledger_costs)s::bigint[]
) WITH ORDINALITY AS calls (model, input_tokens, output_tokens, cost_micros, position)
ON CONFLICT ON CONSTRAINT uq_usage_ledger_job_attempt_call DO NOTHING
RETURNING id
"""


def attempt_params(attempt: Attempt, *, billable: bool) -> dict[str, object]:
    """CALLS_RECORDED's parameters (the statement's `job_id` is the attempt's job)."""
    return {
        "ledger_attempt": attempt.attempt,
        "ledger_user_id": attempt.user_id,
        "ledger_tool": attempt.tool,
        "ledger_models": [call.model for call in attempt.calls],
        "ledger_input_tokens": [call.input_tokens for call in attempt.calls],
        "ledger_output_tokens": [call.output_tokens for call in attempt.calls],
        "ledger_costs": [call.cost_micros for call in attempt.calls],
        "ledger_billable": billable,
        "ledger_lane": attempt.lane,
    }


@dataclass(frozen=True)
class UsageRow:
    key: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    jobs: int


def summarize(
    session: Session, *, user_id: uuid.UUID, start: dt.datetime, end: dt.datetime, group_by: str
) -> tuple[list[UsageRow], UsageRow]:
    """The user's billed usage in [start, end), grouped by day (UTC), tool or model;
    and the totals. Read from the ledger itself, so it is exact to the last call."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}")
    key = {
        "day": func.to_char(func.timezone("UTC", UsageLedger.created_at), "YYYY-MM-DD"),
        "tool": UsageLedger.tool,
        "model": UsageLedger.model,
    }[group_by]
    sums = (
        func.coalesce(func.sum(UsageLedger.input_tokens), 0),
        func.coalesce(func.sum(UsageLedger.output_tokens), 0),
        func.coalesce(func.sum(UsageLedger.cost_micros), 0),
        func.count(UsageLedger.job_id.distinct()),
    )
    where = (
        UsageLedger.user_id == user_id,
        UsageLedger.billed.is_(True),
        UsageLedger.created_at >= start,
        UsageLedger.created_at < end,
    )
    items = [
        UsageRow(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        for row in session.execute(select(key, *sums).where(*where).group_by(key).order_by(key))
    ]
    total = session.execute(select(*sums).where(*where)).one()
    return items, UsageRow("total", int(total[0]), int(total[1]), int(total[2]), int(total[3]))


# ---------------------------------------------------------------- the roll-up

ROLLUP_LOCK = 0x75736167  # pg_advisory_xact_lock key: one roll-up at a time ("usag")


def roll_up(session: Session, *, batch: int = 10_000) -> int:
    """Fold ledger rows not yet counted into `usage_daily`; returns how many.

    Each (user, day) touched by a new row is recomputed whole from the ledger and
    replaced, so running it twice, or over rows it has already seen, changes
    nothing: the roll-up always equals the ledger once it has caught up. Roll-ups
    take turns (an advisory lock), or an older snapshot could overwrite a newer one.
    """
    session.execute(select(func.pg_advisory_xact_lock(ROLLUP_LOCK)))
    pending = select(UsageLedger.id).where(UsageLedger.rolled_up.is_(False)).order_by(UsageLedger.id)
    marked = session.execute(
        update(UsageLedger)
        .where(UsageLedger.id.in_(pending.limit(batch).scalar_subquery()))
        .values(rolled_up=True)
        .returning(UsageLedger.user_id, cast(func.timezone("UTC", UsageLedger.created_at), Date))
    ).all()
    touched = sorted({(row[0], row[1]) for row in marked})
    for user_id, day in touched:
        _recompute_day(session, user_id=user_id, day=day)
    return len(marked)


def _recompute_day(session: Session, *, user_id: uuid.UUID, day: dt.date) -> None:
    ledger_day = cast(func.timezone("UTC", UsageLedger.created_at), Date)
    totals = (
        select(
            UsageLedger.user_id,
            literal(day, Date),
            UsageLedger.tool,
            UsageLedger.model,
            UsageLedger.billed,
            cast(func.count(), Integer),
            cast(func.count(UsageLedger.job_id.distinct()), Integer),
            func.sum(UsageLedger.input_tokens),
            func.sum(UsageLedger.output_tokens),
            func.sum(UsageLedger.cost_micros),
        )
        .where(UsageLedger.user_id == user_id, ledger_day == day)
        .group_by(UsageLedger.user_id, UsageLedger.tool, UsageLedger.model, UsageLedger.billed)
    )
    columns = ["user_id", "day", "tool", "model", "billed", "calls", "jobs"]
    columns += ["input_tokens", "output_tokens", "cost_micros"]
    session.execute(delete(UsageDaily).where(UsageDaily.user_id == user_id, UsageDaily.day == day))
    session.execute(insert(UsageDaily).from_select(columns, totals))
