"""API key rows (only an HMAC of each key is stored)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from db.models.account import ApiKey


def create(session: Session, *, user_id: uuid.UUID, name: str, prefix: str, key_hash: str) -> ApiKey:
    api_key = ApiKey(user_id=user_id, name=name, prefix=prefix, key_hash=key_hash)
    session.add(api_key)
    session.flush()
    session.refresh(api_key)  # created_at comes from the database
    return api_key


def list_for_user(session: Session, *, user_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
    )


def count_active(session: Session, *, user_id: uuid.UUID) -> int:
    return session.scalar(select(func.count()).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)))


def get_for_user(session: Session, *, key_id: uuid.UUID, user_id: uuid.UUID) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))


def get(session: Session, *, key_id: uuid.UUID) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def get_by_hash(session: Session, *, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def revoke(session: Session, *, key_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Revoke the user's key; False if it is not theirs or was already revoked."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return result.rowcount == 1


def revoke_all_for_user(session: Session, *, user_id: uuid.UUID) -> int:
    """Revoke every live key of the user (a password reset); how many were live."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def touch(session: Session, *, key_id: uuid.UUID, min_interval_seconds: int) -> bool:
    """Record a use, unless one was recorded less than `min_interval_seconds` ago
    (concurrent requests race for one write, and most requests write nothing)."""
    result = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None))
            | (ApiKey.last_used_at < func.now() - _seconds(min_interval_seconds)),
        )
        .values(last_used_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _seconds(seconds: int):
    return text("make_interval(secs => :seconds)").bindparams(seconds=seconds)
