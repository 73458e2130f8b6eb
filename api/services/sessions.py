"""Refresh token families: a login starts one, each refresh rotates within it, and a
refresh token presented a second time ends it.

Revoking a family revokes its refresh tokens in Postgres and, for the access tokens
it issued (they carry the family in their `fam` claim), marks the family in Redis for
as long as such an access token can live. Access tokens are checked against Redis
only, so a family revoked while Redis is unreachable leaves its access tokens working
until they expire (15 minutes by default).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable

from sqlalchemy.orm import Session

from api.services.errors import Unauthorized
from db.redis_client import get_redis, key
from db.repositories import refresh_tokens
from settings import Settings

logger = logging.getLogger(__name__)

FAMILY_CLAIM = "fam"
REUSED = (
    "This refresh token was already used, so every session it belongs to has been ended "
    "in case it was stolen. Log in again."
)


def family_revoked_key(family_id: uuid.UUID | str) -> str:
    return key("jwt", "family-revoked", family_id)


def start(
    session: Session,
    *,
    user_id: uuid.UUID,
    jti: uuid.UUID,
    family_id: uuid.UUID,
    settings: Settings,
) -> None:
    """Record the first refresh token of a new family (at login or registration)."""
    refresh_tokens.record(
        session, jti=jti, user_id=user_id, family_id=family_id, expires_at=_expiry(settings)
    )
    session.commit()


def rotate(
    session: Session, *, user_id: uuid.UUID, jti: uuid.UUID, new_jti: uuid.UUID, settings: Settings
) -> uuid.UUID:
    """Use up the presented refresh token and record its successor; returns the family.

    Presenting a used or revoked token revokes the whole family (its other tokens may
    be in a thief's hands) and is refused."""
    family_id = refresh_tokens.use(session, jti=jti, user_id=user_id)
    if family_id is None:
        token = refresh_tokens.get(session, jti=jti, user_id=user_id)
        if token is None:
            session.rollback()
            raise Unauthorized("This refresh token is not known (it may predate a reset). Log in again.")
        if token.used_at is not None or token.revoked_at is not None:
            revoke_families(session, user_id=user_id, family_ids=[token.family_id], settings=settings)
            if token.used_at is not None:
                logger.warning("refresh token reuse user_id=%s family_id=%s", user_id, token.family_id)
                raise Unauthorized(REUSED)
            raise Unauthorized("The session of this refresh token has ended (logged out). Log in again.")
        session.rollback()
        raise Unauthorized("The refresh token has expired. Log in again.")
    refresh_tokens.record(
        session, jti=new_jti, user_id=user_id, family_id=family_id, expires_at=_expiry(settings)
    )
    session.commit()
    return family_id


def end(
    session: Session, *, user_id: uuid.UUID, family_ids: Iterable[uuid.UUID | str | None], settings: Settings
) -> None:
    """Log out: revoke the families named (those of the caller's tokens)."""
    parsed = [_uuid(family_id) for family_id in family_ids]
    revoke_families(
        session, user_id=user_id, family_ids=[f for f in parsed if f is not None], settings=settings
    )


def revoke_families(
    session: Session, *, user_id: uuid.UUID, family_ids: Iterable[uuid.UUID], settings: Settings
) -> None:
    """Revoke the families' refresh tokens (committed) and then their access tokens."""
    family_ids = list(dict.fromkeys(family_ids))
    for family_id in family_ids:
        refresh_tokens.revoke_family(session, family_id=family_id, user_id=user_id)
    session.commit()
    mark_revoked(family_ids, settings=settings)


def revoke_all(session: Session, *, user_id: uuid.UUID, settings: Settings) -> None:
    """End every session of the user (password reset, account deletion); commits."""
    families = refresh_tokens.revoke_all_for_user(session, user_id=user_id)
    session.commit()
    mark_revoked(families, settings=settings)


def mark_revoked(family_ids: Iterable[uuid.UUID], *, settings: Settings) -> None:
    """Refuse the families' access tokens for as long as one of them can be alive."""
    family_ids = list(family_ids)
    if not family_ids:
        return
    ttl = settings.access_token_ttl + 60  # a little slack for clock skew between processes
    pipeline = get_redis().pipeline(transaction=False)
    for family_id in family_ids:
        pipeline.set(family_revoked_key(family_id), "1", ex=ttl)
    pipeline.execute()


def _expiry(settings: Settings) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.refresh_token_ttl)


def _uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
