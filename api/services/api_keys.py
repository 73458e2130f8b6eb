"""API keys: a program's credential for the job API (`X-API-Key`).

A key is `cvk_<8 hex>_<43 random url-safe characters>`. It is shown once, at
creation; only its HMAC-SHA256 under SECRET_KEY is stored (the key is random enough
that a slow password hash would add nothing), with the `cvk_<8 hex>` prefix in clear
so that people can tell their keys apart in the list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.services.errors import Conflict, NotFound, Unauthorized
from db.models import ApiKey, User
from db.repositories import api_keys, users
from db.session import session_scope
from settings import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "cvk_"
MAX_KEY_LENGTH = 100
MAX_ACTIVE_KEYS = 50
# last_used_at is written at most this often per key, not on every request.
TOUCH_INTERVAL_SECONDS = 60


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    key: str  # the secret, shown once


def hash_key(key: str, *, settings: Settings) -> str:
    return hmac.new(settings.secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def create(session: Session, *, user: User, name: str, settings: Settings) -> CreatedKey:
    if api_keys.count_active(session, user_id=user.id) >= MAX_ACTIVE_KEYS:
        raise Conflict(f"You already have {MAX_ACTIVE_KEYS} active API keys; revoke one you no longer use.")
    prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    api_key = api_keys.create(
        session, user_id=user.id, name=name.strip(), prefix=prefix, key_hash=hash_key(key, settings=settings)
    )
    session.commit()
    return CreatedKey(api_key=api_key, key=key)


def list_keys(session: Session, *, user: User) -> list[ApiKey]:
    return api_keys.list_for_user(session, user_id=user.id)


def revoke(session: Session, *, user: User, key_id: uuid.UUID) -> None:
    """Revoke one of the user's keys; revoking a revoked key again is not an error."""
    if api_keys.get_for_user(session, key_id=key_id, user_id=user.id) is None:
        raise NotFound("No such API key.")
    api_keys.revoke(session, key_id=key_id, user_id=user.id)
    session.commit()


def authenticate(session: Session, *, key: str, settings: Settings) -> tuple[User, uuid.UUID]:
    """The user whose live key this is, and the key's id; records the use (at most
    once a minute)."""
    api_key = None
    if key.startswith(KEY_PREFIX) and len(key) <= MAX_KEY_LENGTH:
        api_key = api_keys.get_by_hash(session, key_hash=hash_key(key, settings=settings))
    if api_key is None:
        raise Unauthorized("The API key is not valid. Check the X-API-Key header.")
    if api_key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked; create a new one.")
    user = users.get_open(session, user_id=api_key.user_id)
    if user is None:
        raise Unauthorized("The account for this API key no longer exists.")
    if _due_for_touch(api_key) and api_keys.touch(
        session, key_id=api_key.id, min_interval_seconds=TOUCH_INTERVAL_SECONDS
    ):
        session.commit()
    return user, api_key.id


def lapsed(*, key_id: uuid.UUID) -> str | None:
    """Why a stream opened with this key must end (revoked, or the account closed), or
    None while the key works. None, too, when the database cannot say: the stream asks
    again later rather than ending on an outage."""
    try:
        with session_scope() as session:
            api_key = api_keys.get(session, key_id=key_id)
            if api_key is None or api_key.revoked_at is not None:
                return "The API key this stream was opened with has been revoked; create a new one."
            if users.get_open(session, user_id=api_key.user_id) is None:
                return "The account for this API key no longer exists."
    except SQLAlchemyError:
        logger.warning("api key %s not checked: the database is unavailable", key_id, exc_info=True)
    return None


def _due_for_touch(api_key: ApiKey) -> bool:
    last = api_key.last_used_at
    return last is None or (dt.datetime.now(dt.UTC) - last).total_seconds() >= TOUCH_INTERVAL_SECONDS
