"""A job's links, `urls: {get, cancel, stream}`, as every representation of a job carries
them: the API's answers (api/schemas/jobs.py) and the webhook body
(workers/webhooks/payload.py). Built here so that both make the same links.

`stream` carries a stream token, so that a browser's EventSource (which cannot send an
Authorization header) can follow that one job. A token is base64url of the owner's id
(16 bytes), its expiry (Unix seconds, 4 bytes) and a MAC (16 bytes): HMAC-SHA256 over
the job id, the owner and the expiry, under a key derived from SECRET_KEY for this
purpose alone. It is checked by api/services/stream_tokens.py.

Lifetime: a token works for at most STREAM_TOKEN_TTL after it was handed out, and a
job that has ended gives tokens that work until STREAM_TOKEN_GRACE after the later of
its end and the hand-out (a finished job's URL still opens, to replay its events).
The hand-out time is rounded down to a step of half the grace, so that a job polled
again and again gets the same token (and ETag) until the step turns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from functools import lru_cache
from typing import Any

from db.models.job import TERMINAL
from settings import Settings

API_PREFIX = "/api/v1"
SALT = b"conveyor.stream-token"
ID_BYTES, EXPIRY_BYTES, MAC_BYTES = 16, 4, 16
clock = time.time  # what "now" is; a test may set it


def urls(
    job: Any, *, settings: Settings, manage_path: str = f"{API_PREFIX}/jobs/", now: float | None = None
) -> dict[str, str]:
    """`{get, cancel, stream}` for a job (a `Job`, or a row with its columns), absolute on
    PUBLIC_BASE_URL. `manage_path`: where get and cancel point (the admin API has its own);
    `now`: the hand-out time, when it is not the present (a webhook's body is the same at
    every attempt)."""
    base = settings.public_base_url
    manage = f"{base}{manage_path}{job.id}"
    expires_at = expiry(job, settings=settings, now=now)
    token = mint(job_id=job.id, user_id=job.user_id, expires_at=expires_at, settings=settings)
    return {
        "get": manage,
        "cancel": f"{manage}/cancel",
        "stream": f"{base}{API_PREFIX}/jobs/{job.id}/events?token={token}",
    }


def expiry(job: Any, *, settings: Settings, now: float | None = None) -> int:
    """When a token handed out for this job at `now` (default: the present) stops working
    (Unix seconds): the same answer all through a step, so that it can be part of the
    job's ETag."""
    step = max(settings.stream_token_grace // 2, 1)
    handed_out = int(clock() if now is None else now) // step * step
    bound = handed_out + settings.stream_token_ttl
    if job.status not in TERMINAL:
        return bound
    ended = int(job.finished_at.timestamp()) if job.finished_at is not None else handed_out
    return min(max(ended, handed_out) + settings.stream_token_grace, bound)


def mint(*, job_id: uuid.UUID, user_id: uuid.UUID, expires_at: int, settings: Settings) -> str:
    body = user_id.bytes + expires_at.to_bytes(EXPIRY_BYTES, "big")
    return base64.urlsafe_b64encode(body + mac(job_id, body, settings)).decode()


def mac(job_id: uuid.UUID, body: bytes, settings: Settings) -> bytes:
    return hmac.digest(_key(settings.secret_key), job_id.bytes + body, hashlib.sha256)[:MAC_BYTES]


@lru_cache(maxsize=4)
def _key(secret_key: str) -> bytes:
    """This purpose's own key: a token signed with it passes for nothing else signed
    with SECRET_KEY, and no other signature passes for it."""
    return hmac.digest(secret_key.encode(), SALT, hashlib.sha256)
