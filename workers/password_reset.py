"""The password reset email and the token its link carries.

POST /auth/forgot-password enqueues the same task whatever the address, so that its
answer (and how long it takes) does not tell who has an account; this looks the
account up and queues the email, or does nothing.

The token is an itsdangerous token signed with SECRET_KEY, timestamped (it expires
after PASSWORD_RESET_TTL): `{u: user id, p: fingerprint of the current password
hash}`. Once the password changes the fingerprint no longer matches, so a link works
once. The payload is signed, not encrypted, so it holds an HMAC of the hash, never
the hash. The API checks it (api/services/accounts.py `reset_password`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from itsdangerous import URLSafeTimedSerializer

from db.models import User
from db.repositories import users
from db.session import session_scope
from settings import Settings, get_settings
from workers.mail import outbox

RESET_SALT = "conveyor.password-reset"


def serializer(salt: str, settings: Settings) -> URLSafeTimedSerializer:
    """The signer of the emailed links (a salt per purpose: one never passes for another)."""
    return URLSafeTimedSerializer(settings.secret_key, salt=salt)


def fingerprint(user: User, settings: Settings) -> str:
    digest = hmac.new(settings.secret_key.encode(), user.password_hash.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def queue_email(email: str, *, request_id: str) -> uuid.UUID | None:
    """Queue a reset link to the open account with this address, if there is one, once
    per `request_id` (a redelivered task queues nothing more); the outbox id (None: no
    such account, or this request's email was queued already)."""
    settings = get_settings()
    with session_scope() as session:
        user = users.get_by_email(session, email=email)
        if user is None or user.deleted_at is not None:
            return None
        token = serializer(RESET_SALT, settings).dumps({"u": str(user.id), "p": fingerprint(user, settings)})
        return outbox.enqueue(
            session,
            to=user.email,
            template="password_reset",
            # No name: whoever asks for the email is a stranger until the link is used.
            context={
                "link": settings.reset_url_base + token,
                "expires_in_minutes": settings.password_reset_ttl // 60,
            },
            dedupe_key=f"password_reset:{request_id}",
        )
