"""Refresh token rows: one per issued token, grouped in families (one per login)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from db.models.account import RefreshToken


def record(
    session: Session, *, jti: uuid.UUID, user_id: uuid.UUID, family_id: uuid.UUID, expires_at: dt.datetime
) -> None:
    session.add(RefreshToken(jti=jti, user_id=user_id, family_id=family_id, expires_at=expires_at))
    session.flush()


def use(session: Session, *, jti: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID | None:
    """Use up a live token (compare-and-set on `used_at IS NULL`); returns its family.

    None when the token is unknown, used, revoked or expired: of two concurrent
    refreshes with the same token, the second waits on the row lock and then finds
    it used."""
    return session.scalar(
        update(RefreshToken)
        .where(
            RefreshToken.jti == jti,
            RefreshToken.user_id == user_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(RefreshToken.family_id)
    )


def get(session: Session, *, jti: uuid.UUID, user_id: uuid.UUID) -> RefreshToken | None:
    return session.scalar(
        select(RefreshToken).where(RefreshToken.jti == jti, RefreshToken.user_id == user_id)
    )


def revoke_family(session: Session, *, family_id: uuid.UUID, user_id: uuid.UUID) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.family_id == family_id,
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    return result.rowcount


def revoke_all_for_user(session: Session, *, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Revoke every live token of the user; returns the families that were still live."""
    families = session.scalars(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(RefreshToken.family_id)
    ).all()
    return list(dict.fromkeys(families))


def for_family(session: Session, *, family_id: uuid.UUID) -> list[RefreshToken]:
    return list(
        session.scalars(
            select(RefreshToken).where(RefreshToken.family_id == family_id).order_by(RefreshToken.created_at)
        )
    )


def delete_expired(session: Session, *, expired_before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` tokens that expired before `expired_before`; returns how many.
    A token not yet expired is never deleted, whatever the cutoff: its row is what
    tells a stolen token presented again (used) from an unknown one. Rows another
    transaction holds (a logout revoking them) are left for the next batch."""
    doomed = (
        select(RefreshToken.jti)
        .where(RefreshToken.expires_at < expired_before, RefreshToken.expires_at < func.now())
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(delete(RefreshToken).where(RefreshToken.jti.in_(doomed.scalar_subquery())))
    return result.rowcount
