"""One outbox mechanism over several tables (emails, webhook deliveries, Stripe
events): claim a row for an attempt, record the attempt's outcome, release the
claims of workers that died, and hand the sweep the rows that are due.

Every move is one compare-and-set UPDATE. A claim bumps `attempts`, which is the
claim's fencing token: an outcome is recorded only by the worker whose claim is
still current, so a worker that stalled past its hold cannot overwrite what a later
attempt recorded. A `Table` says how one table shows these states; every table has
`id`, `attempts`, `locked_until` and `last_error`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, false, func, or_, select, update
from sqlalchemy.orm import Session

PENDING = "pending"  # to be tried again
SENDING = "sending"  # a worker holds it until locked_until
FAILED = "failed"  # given up


class Table:
    """A table whose `status` moves `pending → sending → done | failed`, or back to
    `pending` for a retry at `next_attempt_at`. For a pending row `locked_until`
    says a message for it is out and still fresh; for a sending row it is the
    worker's hold."""

    lease_marks = True  # the sweep marks the rows it hands out

    def __init__(self, model: Any, *, done: str, done_at: str, lost: str, **columns: str):
        self.model, self.done, self.done_at, self.lost = model, done, done_at, lost
        # first_attempt_at: stamped by the first claim, the max age counts from it;
        # order_by: the order the sweep hands rows out in.
        self.first_attempt_at = columns.get("first_attempt_at")
        self.order_by = getattr(model, columns.get("order_by", "next_attempt_at"))

    def claimable(self, now: Any) -> list[Any]:
        return [self.model.status == PENDING, self.model.next_attempt_at <= now]

    def claimed(self, now: Any) -> dict[str, Any]:
        if not self.first_attempt_at:
            return {"status": SENDING}
        return {
            "status": SENDING,
            self.first_attempt_at: func.coalesce(getattr(self.model, self.first_attempt_at), now),
        }

    def held(self) -> list[Any]:
        return [self.model.status == SENDING]

    def recorded(self, status: str, now: Any, retry_in: float | None, **fields: Any) -> dict[str, Any]:
        """The columns an outcome sets; `fields` are the table's own (a webhook's status code)."""
        if (status == PENDING) != (retry_in is not None):
            raise ValueError("retry_in is required for a retry, and only for one")
        later = None if retry_in is None else now + dt.timedelta(seconds=retry_in)
        return {
            "status": status,
            "next_attempt_at": later,
            self.done_at: now if status == self.done else None,
        }

    def unsent(self, now: Any, lease_seconds: int) -> list[Any]:
        """No fresh message is out for the row."""
        return [_unlocked(self.model, now)]

    def lapsed(self, now: Any, spent: Any) -> dict[str, Any] | None:
        """What a claim whose worker died becomes (due again, or failed once `spent`);
        None: a lapsed hold needs no release."""
        return {
            "status": case((spent, FAILED), else_=PENDING),
            "next_attempt_at": case((spent, None), else_=now),
            "locked_until": None,
            "last_error": self.lost,
        }

    def log(self, session: Session, rows: Sequence[Any], error: str | None, **fields: Any) -> None:
        """Keep a line per attempt in `rows` (id, attempt), for a table that keeps a log."""


class ProcessedTable(Table):
    """A table whose rows are done once `processed_at` is set. A worker's hold is
    `locked_until` alone, so a lapsed hold can be claimed again as it is; the
    message sent when a row arrives counts as fresh for the dispatch lease."""

    lease_marks = False

    def __init__(self, model: Any, *, arrived_at: str, order_by: str):
        super().__init__(model, done="processed", done_at="processed_at", lost="", order_by=order_by)
        self.arrived_at = getattr(model, arrived_at)

    def claimable(self, now: Any) -> list[Any]:
        return [self.model.processed_at.is_(None), _unlocked(self.model, now)]

    def claimed(self, now: Any) -> dict[str, Any]:
        return {}

    def held(self) -> list[Any]:
        return [self.model.processed_at.is_(None)]

    def recorded(self, status: str, now: Any, retry_in: float | None, **fields: Any) -> dict[str, Any]:
        return {"processed_at": now} if status == self.done else {}

    def unsent(self, now: Any, lease_seconds: int) -> list[Any]:
        return [self.arrived_at < now - dt.timedelta(seconds=lease_seconds)]

    def lapsed(self, now: Any, spent: Any) -> dict[str, Any] | None:
        return None


def claim(session: Session, *, table: Table, row_id: Any, hold_seconds: float) -> Any | None:
    """Take a row for one attempt, held for `hold_seconds`. None: it is not due, is
    held by another worker, or is finished."""
    model, now = table.model, func.now()
    return session.scalar(
        update(model)
        .where(model.id == row_id, *table.claimable(now))
        .values(
            attempts=model.attempts + 1,
            locked_until=now + dt.timedelta(seconds=hold_seconds),
            **table.claimed(now),
        )
        .returning(model)
        .execution_options(populate_existing=True)
    )


def record(
    session: Session,
    *,
    table: Table,
    row_id: Any,
    attempt: int,
    status: str,
    error: str | None = None,
    retry_in: float | None = None,
    fields: dict[str, Any] | None = None,
) -> bool:
    """Move a claimed row on: done, failed, or pending again (in `retry_in` seconds
    where the table keeps a retry time). False: this claim is no longer current."""
    if status not in (table.done, FAILED, PENDING):
        raise ValueError(f"{status!r} is not an outcome of an attempt")
    model, now, fields = table.model, func.now(), fields or {}
    values = table.recorded(status, now, retry_in, **fields)
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.attempts == attempt, *table.held())
        .values(locked_until=None, last_error=error, **values)
    )
    if result.rowcount != 1:
        return False
    table.log(session, [(row_id, attempt)], error, **fields)
    return True


def release_lapsed(
    session: Session, *, table: Table, max_attempts: int | None = None, max_age: float | None = None
) -> int:
    """Rows whose worker died mid-attempt (held past `locked_until`): due again, or failed
    once they have used `max_attempts` or are `max_age` seconds past their first attempt."""
    model, now = table.model, func.now()
    spent: Any = false()
    if max_attempts is not None:
        spent = or_(spent, model.attempts >= max_attempts)
    if max_age is not None and table.first_attempt_at:
        spent = or_(spent, getattr(model, table.first_attempt_at) < now - dt.timedelta(seconds=max_age))
    values = table.lapsed(now, spent)
    if values is None:
        return 0
    rows = session.execute(
        update(model)
        .where(*table.held(), model.locked_until < now)
        .values(**values)
        .returning(model.id, model.attempts)
    ).all()
    table.log(session, rows, table.lost)
    return len(rows)


def dispatch(
    session: Session,
    *,
    table: Table,
    lease_seconds: int,
    max_attempts: int | None = None,
    ids: Sequence[Any] | None = None,
    match: dict[str, Any] | None = None,
    limit: int = 500,
) -> list[Any]:
    """Due rows with no fresh message out (all, those in `ids`, or those equal to `match`),
    marked as having one for `lease_seconds`: a backed-up queue gets no more per sweep."""
    model, now = table.model, func.now()
    due = (
        select(model.id)
        .where(*table.claimable(now), *table.unsent(now, lease_seconds))
        .order_by(table.order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if max_attempts is not None:
        due = due.where(model.attempts < max_attempts)
    if ids is not None:
        due = due.where(model.id.in_(list(ids)))
    for name, value in (match or {}).items():
        due = due.where(getattr(model, name) == value)
    if not table.lease_marks:
        return list(session.scalars(due))
    marked = session.scalars(
        update(model)
        .where(model.id.in_(due.scalar_subquery()))
        .values(locked_until=now + dt.timedelta(seconds=lease_seconds))
        .returning(model.id)
    )
    return list(marked)


def _unlocked(model: Any, now: Any) -> Any:
    return or_(model.locked_until.is_(None), model.locked_until < now)
