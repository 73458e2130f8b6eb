"""Accounts: registering, authenticating, the profile, closing the account, and the
emailed links that verify an address or reset a password.

The links carry itsdangerous tokens signed with SECRET_KEY (a salt per purpose, so
one kind of token never passes for the other) and timestamped (they expire):

- verify: `{u: user id, e: email}`. Single-use by nature: once the address is
  verified, using the link again answers 200 as the first time did.
- reset: made by the task that emails it (workers/password_reset.py, which says what
  it holds); it works once, and using it ends every session and revokes every API
  key of the account: whoever could use them may be who the reset locks out.

A password being set (registration, reset) must pass api/services/password_policy.py.
The verification email does not carry the name given at registration: whoever
registers may be a stranger to the address.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from typing import Any

from itsdangerous import BadData, SignatureExpired
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services import password_policy, passwords, sessions, stream_tokens
from api.services.errors import OUTAGE_RETRY_AFTER, BadRequest, Conflict, Gone, Unauthorized, Unavailable
from db.models import User
from db.repositories import api_keys, users
from settings import Settings
from tasks import accounts as account_tasks
from tasks import email as email_tasks
from workers.mail import outbox
from workers.password_reset import RESET_SALT, fingerprint, serializer

logger = logging.getLogger(__name__)

VERIFY_SALT = "conveyor.verify-email"
VERIFY_PATH = "/api/v1/auth/verify-email/"
# A resent verification email is queued at most once per this many seconds.
RESEND_WINDOW = 600


def register(session: Session, *, email: str, password: str, name: str, settings: Settings) -> User:
    """Create the account and queue its verification email in the same transaction.

    An address that has an account already is a 409 (the contract answers tokens at
    registration, so there is no answer that looks the same); the registration limits
    (api/request_limits.py) are what bound asking address after address."""
    password_policy.check(password, email=email, name=name)
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


def forgot_password(*, email: str) -> None:
    """Queue the task that emails a reset link if the account exists: the same work
    whether it does or not, so neither the answer nor its timing tells who has an
    account. 503 when the queue cannot take it (for every address alike)."""
    try:
        account_tasks.request_password_reset(users.normalize_email(email))
    except Exception:
        logger.warning("password reset enqueue failed", exc_info=True)
        raise Unavailable(
            "Password reset emails cannot be queued right now; try again in a few seconds.",
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        ) from None


def reset_password(session: Session, *, token: str, password: str, settings: Settings) -> None:
    """Set a new password from a reset link; end every session of the account and
    revoke its API keys."""
    data = _load(token, salt=RESET_SALT, max_age=settings.password_reset_ttl, settings=settings, what="reset")
    user = _user_of(session, data)
    used = Gone("This password reset link has already been used; ask for a new one if you need it.")
    if user is None or not hmac.compare_digest(str(data.get("p")), fingerprint(user, settings)):
        raise used
    password_policy.check(password, email=user.email, name=user.name)
    if not users.set_password_hash(
        session, user_id=user.id, old_hash=user.password_hash, new_hash=passwords.hash_password(password)
    ):
        session.rollback()
        raise used  # another request with the same link won the race
    # The link reached the inbox, which proves the address as well as a verification link would.
    users.mark_email_verified(session, user_id=user.id, email=user.email)
    api_keys.revoke_all_for_user(session, user_id=user.id)
    sessions.revoke_all(session, user_id=user.id, settings=settings)  # commits


def _queue_verification(session: Session, *, user: User, settings: Settings, dedupe: str) -> uuid.UUID | None:
    token = serializer(VERIFY_SALT, settings).dumps({"u": str(user.id), "e": user.email})
    return outbox.enqueue(
        session,
        to=user.email,
        template="verify_email",
        context={"link": f"{settings.public_base_url}{VERIFY_PATH}{token}"},
        dedupe_key=dedupe,
    )


def _load(token: str, *, salt: str, max_age: int, settings: Settings, what: str) -> dict[str, Any]:
    again = (
        "ask for a new one (POST /api/v1/auth/forgot-password)."
        if what == "reset"
        else "log in and ask for a new one (POST /api/v1/auth/verify-email)."
    )
    try:
        data = serializer(salt, settings).loads(token, max_age=max_age)
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
