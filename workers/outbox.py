"""One delivery loop for every outbox (emails, webhooks, Stripe events): claim a
row, run the kind's transport with the session closed, record the outcome; and the
sweep that releases the claims of dead workers and hands out the due rows.

Every move is a compare-and-set in db.repositories.outbox, so a duplicate message
or a second worker cannot make an attempt twice or overwrite an outcome. A worker
that dies after the transport acted but before recording it can make a row act
twice (at-least-once): each kind gives the receiver an id that stays the same on
every attempt, to fold the copies. A database restart between the two is waited out
instead: that gap is not a dying worker's, and need not send anything twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from db.repositories import outbox
from db.repositories.outbox import FAILED, PENDING
from db.session import session_scope

# A due row gets at most one message this often, however backed up the queue is.
DISPATCH_LEASE = 60
MAX_ERROR = 500
# How long an attempt that has acted waits for the database to come back to record it.
RECORD_PATIENCE = 15.0


@dataclass(frozen=True)
class Retries:
    """When a row is tried again after a failed attempt, and when it is given up."""

    schedule: tuple[float, ...] = ()  # seconds before the retry after attempt n, then the last apart
    max_attempts: int | None = None
    max_age: float | None = None  # seconds from the first attempt
    jitter: float = 0.2

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt `attempt` (1-based), with jitter."""
        if not self.schedule:
            return None
        base = self.schedule[min(attempt, len(self.schedule)) - 1]
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 - jitter, not a secret

    def after(self, attempt: int, first_attempt_at: dt.datetime | None) -> tuple[float | None, str | None]:
        """(seconds to the retry, None), or (None, why the row is given up)."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None, f"gave up after {attempt} attempts"
        retry_in = self.delay(attempt)
        if self.max_age is not None and first_attempt_at is not None:
            retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=retry_in or 0)
            if retry_at > first_attempt_at + dt.timedelta(seconds=self.max_age):
                return None, f"giving up after {attempt} attempts over {self.max_age} s"
        return retry_in, None


@dataclass(frozen=True)
class Kind:
    """One outbox: its table, and how its rows show in log lines and metrics."""

    name: str
    table: outbox.Table
    logger: logging.Logger  # the kind's own, so its lines carry its module's name
    id_name: str  # the row id's name in log lines
    load: Callable[[Session, Any], Any]  # the claimed row, copied out of the session
    retries: Retries
    labels: Callable[[Any], dict[str, Any]] = lambda item: {}  # more of the row for its log lines
    metric: Callable[[str], None] | None = None  # counts each recorded outcome
    unexpected: str | None = None  # what an error the transport did not expect leaves the row
    limit: int = 500  # rows a sweep hands out at most


@dataclass
class Claim:
    """One attempt at one row, taken out of the session before it is closed."""

    row_id: Any
    attempt: int
    first_attempt_at: dt.datetime | None
    item: Any
    labels: dict[str, Any]
    finished: bool = False


@dataclass(frozen=True)
class Result:
    """What an attempt came to: the row's status (the table's done, PENDING or FAILED;
    None: the claim had lapsed), why, the table's own columns, and the caller's detail."""

    status: str | None
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    detail: Any = None


Transport = Callable[[Claim], Result]  # makes the attempt, with the session closed


def attempt(kind: Kind, row_id: Any, *, hold_seconds: float, transport: Transport) -> Result | None:
    """Make one attempt if the row is due; None if not (not due, held, or finished). A
    transport that records in the transaction of its changes calls `finish` itself."""
    claim = _claim(kind, row_id, hold_seconds)
    if claim is None:
        kind.logger.info(
            "%s=%s not attempted: not due, held by another worker, or finished", kind.id_name, row_id
        )
        return None
    try:
        result = transport(claim)
    except Exception as error:
        if kind.unexpected is not None:  # recorded, and Celery logs the traceback
            finish(kind, claim, Result(kind.unexpected, error=f"{type(error).__name__}: {error}"))
        raise
    return result if claim.finished else finish(kind, claim, result)


def finish(kind: Kind, claim: Claim, result: Result, *, session: Session | None = None) -> Result:
    """Record the attempt's outcome (in `session`'s transaction if given, undoing it
    when the claim had lapsed); a retry past the kind's retries is given up."""
    status, error, retry_in = result.status, result.error, None
    if status == PENDING:
        retry_in, gave_up = kind.retries.after(claim.attempt, claim.first_attempt_at)
        status, error = (FAILED, f"{error}; {gave_up}") if gave_up else (status, error)
    claim.finished = True
    outcome = {"status": status, "error": _short(error), "retry_in": retry_in, "fields": result.fields}
    if session is not None:
        recorded = outbox.record(
            session, table=kind.table, row_id=claim.row_id, attempt=claim.attempt, **outcome
        )
        if not recorded:
            session.rollback()
    else:
        recorded = _record(kind, claim, outcome)
    if not recorded:
        kind.logger.warning(
            "%s=%s attempt=%s outcome dropped: the claim lapsed (the sweep took it back) or the row is gone",
            kind.id_name,
            claim.row_id,
            claim.attempt,
        )
        return dataclasses.replace(result, status=None)
    if kind.metric is not None:
        kind.metric(status)
    shown = {**claim.labels, **result.fields, "error": error}
    (kind.logger.info if status == kind.table.done else kind.logger.warning)(
        "%s=%s attempt=%s %s%s",
        kind.id_name,
        claim.row_id,
        claim.attempt,
        status,
        "".join(f" {name}={value}" for name, value in shown.items() if value is not None),
    )
    return dataclasses.replace(result, status=status, error=error)


def _record(kind: Kind, claim: Claim, outcome: dict[str, Any]) -> bool:
    """The transport has acted (an email went out): an outcome lost to a database restart
    would let the row act again once its claim lapsed, so the restart is waited out
    (within the claim's hold, the record still applies)."""
    deadline = time.monotonic() + RECORD_PATIENCE
    while True:
        try:
            with session_scope() as session:
                return outbox.record(
                    session, table=kind.table, row_id=claim.row_id, attempt=claim.attempt, **outcome
                )
        except OperationalError as error:
            if time.monotonic() > deadline:
                raise
            kind.logger.warning(
                "%s=%s attempt=%s outcome waits for the database: %s",
                kind.id_name,
                claim.row_id,
                claim.attempt,
                type(error.orig).__name__ if error.orig else error,
            )
            time.sleep(0.5)


def sweep(kind: Kind, *, lease_seconds: int = DISPATCH_LEASE) -> list[Any]:
    """Rows to send a message for now: due ones, and those whose worker died mid-attempt."""
    with session_scope() as session:
        limits = {"max_attempts": kind.retries.max_attempts}
        lost = outbox.release_lapsed(session, table=kind.table, max_age=kind.retries.max_age, **limits)
        due_now = outbox.dispatch(
            session, table=kind.table, lease_seconds=lease_seconds, limit=kind.limit, **limits
        )
    if lost:
        kind.logger.warning("%s: %s lost their worker mid-attempt; retrying", kind.name, lost)
    return due_now


def due(kind: Kind, *, ids: list[Any] | None = None, match: dict[str, Any] | None = None) -> list[Any]:
    """Those of `ids` (or the rows matching `match`) due with no fresh message out."""
    with session_scope() as session:
        return outbox.dispatch(
            session, table=kind.table, lease_seconds=DISPATCH_LEASE, ids=ids, match=match, limit=kind.limit
        )


def _claim(kind: Kind, row_id: Any, hold_seconds: float) -> Claim | None:
    with session_scope() as session:
        row = outbox.claim(session, table=kind.table, row_id=row_id, hold_seconds=hold_seconds)
        if row is None:
            return None
        item, first = kind.load(session, row), kind.table.first_attempt_at
        return Claim(row.id, row.attempts, getattr(row, first) if first else None, item, kind.labels(item))


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_ERROR:
        return text
    return text[: MAX_ERROR - 1] + "…"
