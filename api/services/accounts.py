"""Registering and authenticating users."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services.errors import Conflict, Unauthorized
from db.models import User
from db.repositories import users

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def register(session: Session, *, email: str, password: str, name: str) -> User:
    if users.get_by_email(session, email=email) is not None:
        raise Conflict("An account with this email already exists; log in instead.")
    try:
        user = users.create(session, email=email, password_hash=_hasher.hash(password), name=name)
        session.commit()
    except IntegrityError:  # registered concurrently
        session.rollback()
        raise Conflict("An account with this email already exists; log in instead.") from None
    return user


def authenticate(session: Session, *, email: str, password: str) -> User:
    user = users.get_by_email(session, email=email)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("The email or password is incorrect.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.commit()
    return user
