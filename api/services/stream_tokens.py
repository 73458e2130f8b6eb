"""Stream tokens, checked: the `token` in a job's `urls.stream` (made by
workers/job_links.py, which says what a token is and how long it lives). A token

- is good for one job only: the job id comes from the URL and is under the MAC;
- grants nothing but reading that job's events: only GET /jobs/<id>/events reads
  it, and it is no JWT, so no other route takes it;
- holds no access token, and is checked without a database read: the MAC, the
  expiry, and a Redis key that closing the account writes (`refuse_owner`). Like
  revoked sessions (api/services/sessions.py), a closed account whose key Redis lost
  keeps its stream URLs working until they expire, or its jobs are deleted.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import uuid
from dataclasses import dataclass

from redis.exceptions import RedisError

from api.services.errors import AccountClosed, Gone, Unauthorized
from db.redis_client import get_redis, key
from db.repositories import users
from db.session import standalone
from settings import Settings
from workers import job_links

_ID, _EXPIRY, _MAC = job_links.ID_BYTES, job_links.EXPIRY_BYTES, job_links.MAC_BYTES
_LENGTH = _ID + _EXPIRY + _MAC


@dataclass(frozen=True)
class Grant:
    """What a valid token lets its holder do: read this job's events, until `expires_at`."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: int  # Unix seconds


def verify(token: str, *, job_id: uuid.UUID, settings: Settings) -> Grant:
    """The grant of a token presented for this job; 401 when it is not this job's (or
    not whole), 410 once it has expired, 401 once the owner's account was closed."""
    body = _decode(token)
    signed = body[: _ID + _EXPIRY] if body is not None else b""
    expected = job_links.mac(job_id, signed, settings)
    if body is None or not hmac.compare_digest(body[_ID + _EXPIRY :], expected):
        raise Unauthorized(
            "This stream URL is not valid for this job: it was made for another job, or was not "
            f"copied whole. GET /api/v1/jobs/{job_id} for the job's urls.stream.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    grant = Grant(
        job_id=job_id,
        user_id=uuid.UUID(bytes=body[:_ID]),
        expires_at=int.from_bytes(body[_ID : _ID + _EXPIRY], "big"),
    )
    check(grant)
    return grant


def check(grant: Grant) -> None:
    """Refuse a grant that has expired (410) or whose owner closed the account (401),
    when a stream opens."""
    if job_links.clock() >= grant.expires_at:
        raise Gone(_expired(grant))
    if owner_closed(grant.user_id):
        raise AccountClosed()


def lapsed(grant: Grant) -> str | None:
    """For a stream that is open: why it must end now (the token expired, the account
    was closed), or None while it may go on. Never raises: when Redis cannot tell, the
    stream goes on and asks again later."""
    if job_links.clock() >= grant.expires_at:
        return _expired(grant)
    try:
        closed = get_redis().exists(_closed_key(grant.user_id)) > 0
    except RedisError:
        return None
    return AccountClosed().message if closed else None


def _expired(grant: Grant) -> str:
    return f"This stream URL has expired. GET /api/v1/jobs/{grant.job_id} again for a fresh urls.stream."


def refuse_owner(user_id: uuid.UUID, *, settings: Settings) -> None:
    """The account is closed: refuse its stream tokens from now on. The mark lasts as long
    as a token handed out before the close can."""
    get_redis().set(_closed_key(user_id), "1", ex=settings.stream_token_ttl + 60)


def owner_closed(user_id: uuid.UUID) -> bool:
    """Whether the account was closed: Redis's mark, or the row when Redis cannot answer."""
    try:
        return get_redis().exists(_closed_key(user_id)) > 0
    except RedisError:
        with standalone() as connection:
            return users.get_caller(connection, user_id=user_id) is None


def _closed_key(user_id: uuid.UUID) -> str:
    return key("user", user_id, "stream-tokens-refused")


def _decode(token: str) -> bytes | None:
    if len(token) != _LENGTH * 4 // 3:
        return None
    try:
        body = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return body if len(body) == _LENGTH else None
