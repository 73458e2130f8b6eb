"""Accounts: registering, authenticating, the profile, closing the account, and the
emailed links that verify an address or reset a password.

The links carry itsdangerous tokens signed with SECRET_KEY (a salt per purpose, so
one kind of token never passes for the other) and timestamped (they expire):

- verify: `{u: user id, e: email}`. Single-use by nature: once the address is
  verified, using the link again answers 200 as the first time did.
- reset: `{u: user id, p: fingerprint of the current password hash}`. Once the
  password changes (through this link or otherwise) the fingerprint no longer
  matches, so the link works once. The payload is signed, not encrypted, so it holds
  an HMAC of the hash, never the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import passwords, sessions, stream_tokens
from api.services.errors import BadRequest, Conflict, Gone, Unauthorized
from db.models import User
from db.repositories import users
from settings import Settings
from tasks import accounts as account_tasks
from tasks import email as email_tasks
from workers.mail import outbox

logger = logging.getLogger(__name__)

VERIFY_SALT = "conveyor.verify-email"
RESET_SALT = "conveyor.password-reset"
VERIFY_PATH = "/api/v1/auth/verify-email/"
# A resent verification email is queued at most once per this many seconds.
RESEND_WINDOW = 600


def register(session: Session, *, email: str, password: str, name: str, settings: Settings) -> User:
    """Create the account and queue its verification email in the same transaction."""
    if users.get_by_email(session, email=email) is not None:
        raise Conflict("An account with this email already exists; log in instead.")
    try:
        user = users.create(session, email=email, password_hash=passwords.hash_password(password), name=name)
        email_id = _queue_verification(
            session, user=user, settings=settings, dedupe=f"verify_email:{user.id}"
        )
        session.commit()
    except IntegrityError:  # registered concurrently
        session.rollback()
        raise Conflict("An account with this email already exists; log in instead.") from None
    email_tasks.send_soon([email_id])
    return user


def authenticate(session: Session, *, email: str, password: str) -> User:
    user = users.get_by_email(session, email=email)
    if user is not None and user.deleted_at is not None:
        user = None
    if not passwords.verify(user.password_hash if user else None, password):
        raise Unauthorized("The email or password is incorrect.")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        session.commit()
    return user


# ---------------------------------------------------------------- the profile


def update(
    session: Session, *, user: User, name: str | None = None, profile: dict[str, Any] | None = None
) -> User:
    """Change the name and merge the profile (a key set to None is removed)."""
    if name is not None:
        users.update_fields(session, user=user, name=name.strip())
    if profile:
        user.profile = users.merge_profile(
            session,
            user_id=user.id,
            values={key: value for key, value in profile.items() if value is not None},
            remove=[key for key, value in profile.items() if value is None],
        )
    session.commit()
    return user


def close(session: Session, *, user: User, settings: Settings) -> None:
    """Lock the account out at once (every token and key stops working), then delete
    it and its data in a task. If the task cannot be sent now, the beat's sweep
    sends it a few minutes later."""
    users.mark_deleted(session, user_id=user.id)
    sessions.revoke_all(session, user_id=user.id, settings=settings)  # commits
    stream_tokens.refuse_owner(user.id, settings=settings)
    try:
        account_tasks.send_delete(user.id)
    except Exception:
        logger.warning("user_id=%s deletion enqueue failed; left for the sweep", user.id, exc_info=True)


# ---------------------------------------------------------------- emailed links


def resend_verification(session: Session, *, user: User, settings: Settings) -> None:
    if user.email_verified_at is not None:
        raise Conflict("Your email address is already verified.")
    window = int(time.time()) // RESEND_WINDOW
    email_id = _queue_verification(
        session, user=user, settings=settings, dedupe=f"verify_email:{user.id}:{window}"
    )
    session.commit()
    email_tasks.send_soon([email_id])


def verify_email(session: Session, *, token: str, settings: Settings) -> bool:
    """Verify the address the link was sent to; returns False if it already was."""
    data = _load(
        token,
        salt=VERIFY_SALT,
        max_age=settings.email_verification_ttl,
        settings=settings,
        what="verification",
    )
    user = _user_of(session, data)
    if user is None or not isinstance(data.get("e"), str):
        raise Gone("The account this link was sent for no longer exists.")
    if users.normalize_email(user.email) != users.normalize_email(data["e"]):
        raise Gone("This link was sent to an address that is no longer the account's.")
    if user.email_verified_at is not None:
        return False
    verified = users.mark_email_verified(session, user_id=user.id, email=data["e"])
    session.commit()
    return verified


def forgot_password(session: Session, *, email: str, settings: Settings) -> None:
    """Email a reset link if the account exists. The caller answers the same either
    way, so the endpoint does not tell who has an account."""
    user = users.get_by_email(session, email=email)
    if user is None or user.deleted_at is not None:
        return
    token = _serializer(RESET_SALT, settings).dumps({"u": str(user.id), "p": _fingerprint(user, settings)})
    email_id = outbox.enqueue(
        session,
        to=user.email,
        template="password_reset",
        context={
            "name": user.name,
            "link": settings.reset_url_base + token,
            "expires_in_minutes": settings.password_reset_ttl // 60,
        },
        dedupe_key=f"password_reset:{hashlib.sha256(token.encode()).hexdigest()[:40]}",
    )
    session.commit()
    email_tasks.send_soon([email_id])


def reset_password(session: Session, *, token: str, password: str, settings: Settings) -> None:
    """Set a new password from a reset link, and end every session of the account."""
    data = _load(token, salt=RESET_SALT, max_age=settings.password_reset_ttl, settings=settings, what="reset")
    user = _user_of(session, data)
    used = Gone("This password reset link has already been used; ask for a new one if you need it.")
    if user is None or not hmac.compare_digest(str(data.get("p")), _fingerprint(user, settings)):
        raise used
    if not users.set_password_hash(
        session, user_id=user.id, old_hash=user.password_hash, new_hash=passwords.hash_password(password)
    ):
        session.rollback()
        raise used  # another request with the same link won the race
    # The link reached the inbox, which proves the address as well as a verification link would.
    users.mark_email_verified(session, user_id=user.id, email=user.email)
    sessions.revoke_all(session, user_id=user.id, settings=settings)  # commits


def _queue_verification(session: Session, *, user: User, settings: Settings, dedupe: str) -> uuid.UUID | None:
    token = _serializer(VERIFY_SALT, settings).dumps({"u": str(user.id), "e": user.email})
    return outbox.enqueue(
        session,
        to=user.email,
        template="verify_email",
        context={"name": user.name, "link": f"{settings.public_base_url}{VERIFY_PATH}{token}"},
        dedupe_key=dedupe,
    )


def _serializer(salt: str, settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=salt)


def _load(token: str, *, salt: str, max_age: int, settings: Settings, what: str) -> dict[str, Any]:
    again = (
        "ask for a new one (POST /api/v1/auth/forgot-password)."
        if what == "reset"
        else "log in and ask for a new one (POST /api/v1/auth/verify-email)."
    )
    try:
        data = _serializer(salt, settings).loads(token, max_age=max_age)
    except SignatureExpired:
        raise Gone(f"This {what} link has expired; {again}") from None
    except BadData:
        raise BadRequest(
            f"This {what} link is not valid; check that it was copied whole, or {again}"
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(f"This {what} link is not valid; {again}")
    return data


def _user_of(session: Session, data: dict[str, Any]) -> User | None:
    try:
        user_id = uuid.UUID(str(data.get("u")))
    except ValueError:
        return None
    return users.get_open(session, user_id=user_id)


def _fingerprint(user: User, settings: Settings) -> str:
    digest = hmac.new(settings.secret_key.encode(), user.password_hash.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]
