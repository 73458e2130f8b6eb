"""Stream tokens: the `token` in a job's `urls.stream`, so that a browser's EventSource,
which cannot send an Authorization header, can follow that one job.

A token is base64url of the owner's id (16 bytes), its expiry (Unix seconds, 4 bytes)
and a MAC (16 bytes): HMAC-SHA256 over the job id, the owner and the expiry, under a
key derived from SECRET_KEY for this purpose alone. So a token

- is good for one job only: the job id comes from the URL and is under the MAC;
- grants nothing but reading that job's events: only GET /jobs/<id>/events reads
  it, and it is no JWT, so no other route takes it;
- holds no access token, and is checked without a database read: the MAC, the
  expiry, and a Redis key that closing the account writes (`refuse_owner`). Like
  revoked sessions (api/services/sessions.py), a closed account whose key Redis lost
  keeps its stream URLs working until they expire, or its jobs are deleted.

Lifetime: a token works for at most STREAM_TOKEN_TTL after it was handed out, and a
job that has ended gives tokens that work until STREAM_TOKEN_GRACE after the later of
its end and the hand-out (a finished job's URL still opens, to replay its events).
The hand-out time is rounded down to a step of half the grace, so that a job polled
again and again gets the same token (and ETag) until the step turns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from redis.exceptions import RedisError

from api.services.errors import AccountClosed, Gone, Unauthorized
from db.models.job import TERMINAL
from db.redis_client import get_redis, key
from db.repositories import users
from db.session import standalone
from settings import Settings

SALT = b"conveyor.stream-token"
_ID, _EXPIRY, _MAC = 16, 4, 16
_LENGTH = _ID + _EXPIRY + _MAC
clock = time.time  # what "now" is; a test may set it


@dataclass(frozen=True)
class Grant:
    """What a valid token lets its holder do: read this job's events, until `expires_at`."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: int  # Unix seconds


def for_job(job: Any, *, settings: Settings) -> str:
    """The token for a job (a `Job`, or a row with its columns), handed out now."""
    expires_at = expiry(job, settings=settings)
    return mint(job_id=job.id, user_id=job.user_id, expires_at=expires_at, settings=settings)


def expiry(job: Any, *, settings: Settings) -> int:
    """When a token handed out for this job now stops working (Unix seconds): the same
    answer all through a step, so that it can be part of the job's ETag."""
    step = max(settings.stream_token_grace // 2, 1)
    handed_out = int(clock()) // step * step
    bound = handed_out + settings.stream_token_ttl
    if job.status not in TERMINAL:
        return bound
    ended = int(job.finished_at.timestamp()) if job.finished_at is not None else handed_out
    return min(max(ended, handed_out) + settings.stream_token_grace, bound)


def mint(*, job_id: uuid.UUID, user_id: uuid.UUID, expires_at: int, settings: Settings) -> str:
    body = user_id.bytes + expires_at.to_bytes(_EXPIRY, "big")
    return base64.urlsafe_b64encode(body + _mac(job_id, body, settings)).decode()


def verify(token: str, *, job_id: uuid.UUID, settings: Settings) -> Grant:
    """The grant of a token presented for this job; 401 when it is not this job's (or
    not whole), 410 once it has expired, 401 once the owner's account was closed."""
    body = _decode(token)
    signed = body[: _ID + _EXPIRY] if body is not None else b""
    if body is None or not hmac.compare_digest(body[_ID + _EXPIRY :], _mac(job_id, signed, settings)):
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
    if clock() >= grant.expires_at:
        raise Gone(_expired(grant))
    if owner_closed(grant.user_id):
        raise AccountClosed()


def lapsed(grant: Grant) -> str | None:
    """For a stream that is open: why it must end now (the token expired, the account
    was closed), or None while it may go on. Never raises: when Redis cannot tell, the
    stream goes on and asks again later."""
    if clock() >= grant.expires_at:
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


def _mac(job_id: uuid.UUID, body: bytes, settings: Settings) -> bytes:
    return hmac.digest(_key(settings.secret_key), job_id.bytes + body, hashlib.sha256)[:_MAC]


@lru_cache(maxsize=4)
def _key(secret_key: str) -> bytes:
    """This purpose's own key: a token signed with it passes for nothing else signed
    with SECRET_KEY, and no other signature passes for it."""
    return hmac.digest(secret_key.encode(), SALT, hashlib.sha256)
