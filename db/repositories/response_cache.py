"""The response cache's rows: read an entry, put one, purge, bound its size, and the
look-ups a submit records (hits with what they saved, misses)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.response_cache import ResponseCacheEntry, ResponseCacheLookup


def get(session: Session, *, key: str) -> ResponseCacheEntry | None:
    """The entry under `key`, unless it has expired (the cleanup removes it later)."""
    return session.scalar(
        select(ResponseCacheEntry).where(
            ResponseCacheEntry.key == key, ResponseCacheEntry.expires_at > func.now()
        )
    )


def put(
    session: Session,
    *,
    key: str,
    tool: str,
    user_id: uuid.UUID | None,
    model: str,
    output: dict[str, Any],
    input_tokens: int,
    output_tokens: int,
    cost_micros: int,
    source_job_id: uuid.UUID,
    ttl_seconds: int,
) -> None:
    """Store an answer under `key`, replacing whatever was there (a `refresh`)."""
    values = {
        "tool": tool,
        "user_id": user_id,
        "model": model,
        "output": output,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_micros": cost_micros,
        "source_job_id": source_job_id,
        "created_at": func.now(),
        "expires_at": func.now() + dt.timedelta(seconds=ttl_seconds),
    }
    statement = insert(ResponseCacheEntry).values(key=key, **values)
    session.execute(statement.on_conflict_do_update(index_elements=["key"], set_=values))


def purge(session: Session, *, tool: str | None = None, user_id: uuid.UUID | None = None) -> int:
    """Remove the entries of a tool, of a user, of both, or all of them. How many went."""
    statement = delete(ResponseCacheEntry)
    if tool is not None:
        statement = statement.where(ResponseCacheEntry.tool == tool)
    if user_id is not None:
        statement = statement.where(ResponseCacheEntry.user_id == user_id)
    return session.execute(statement).rowcount


def forget_answer_of(session: Session, *, job_id: uuid.UUID) -> int:
    """Remove the answer a job produced (the job is being deleted)."""
    return session.execute(
        delete(ResponseCacheEntry).where(ResponseCacheEntry.source_job_id == job_id)
    ).rowcount


def sweep(session: Session, *, max_entries: int) -> int:
    """Remove the expired entries, then the oldest beyond `max_entries`. How many went."""
    removed = session.execute(
        delete(ResponseCacheEntry).where(ResponseCacheEntry.expires_at <= func.now())
    ).rowcount
    beyond = (
        select(ResponseCacheEntry.key)
        .order_by(ResponseCacheEntry.created_at.desc(), ResponseCacheEntry.key)
        .offset(max_entries)
        .scalar_subquery()
    )
    return (
        removed
        + session.execute(delete(ResponseCacheEntry).where(ResponseCacheEntry.key.in_(beyond))).rowcount
    )


def record_lookup(
    session: Session,
    *,
    job_id: uuid.UUID,
    user_id: uuid.UUID,
    tool: str,
    model: str,
    hit: ResponseCacheEntry | None,
    saved_cost_micros: int = 0,
) -> None:
    """A submit looked in the cache: a hit saves its entry's tokens, and what they would
    cost (the caller prices them)."""
    session.add(
        ResponseCacheLookup(
            job_id=job_id,
            user_id=user_id,
            tool=tool,
            model=model,
            hit=hit is not None,
            saved_input_tokens=hit.input_tokens if hit is not None else 0,
            saved_output_tokens=hit.output_tokens if hit is not None else 0,
            saved_cost_micros=saved_cost_micros if hit is not None else 0,
        )
    )


@dataclass(frozen=True)
class Savings:
    hits: int = 0
    misses: int = 0
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    saved_cost_micros: int = 0


def savings(
    session: Session, *, start: dt.datetime, end: dt.datetime, user_id: uuid.UUID | None = None
) -> Savings:
    """The look-ups from `start` (inclusive) to `end` (exclusive): a user's, or everyone's."""
    lookup = ResponseCacheLookup
    query = select(
        func.count().filter(lookup.hit),
        func.count().filter(~lookup.hit),
        func.coalesce(func.sum(lookup.saved_input_tokens), 0),
        func.coalesce(func.sum(lookup.saved_output_tokens), 0),
        func.coalesce(func.sum(lookup.saved_cost_micros), 0),
    ).where(lookup.created_at >= start, lookup.created_at < end)
    if user_id is not None:
        query = query.where(lookup.user_id == user_id)
    return Savings(*(int(value) for value in session.execute(query).one()))
