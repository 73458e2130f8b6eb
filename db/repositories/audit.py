"""The admin audit log: append and read, newest first."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from db.models.audit import AuditEntry


def record(
    session: Session,
    *,
    actor_id: uuid.UUID | None,
    actor_email: str,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction (so it commits with the action, or not at all).
    An action with no account behind it (an operator's command) has no `actor_id`, and
    `actor_email` says what did it instead."""
    entry = AuditEntry(
        actor_id=actor_id,
        actor_email=actor_email,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        request_id=request_id,
    )
    session.add(entry)
    session.flush()
    return entry


def list_page(
    session: Session,
    *,
    action: str | None = None,
    actor_id: uuid.UUID | None = None,
    target_id: str | None = None,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Newest first; `after` is the (at, id) of the last entry already seen."""
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if target_id:
        query = query.where(AuditEntry.target_id == target_id)
    if after is not None:
        at, entry_id = after
        query = query.where(or_(AuditEntry.at < at, and_(AuditEntry.at == at, AuditEntry.id < entry_id)))
    return list(session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)))
