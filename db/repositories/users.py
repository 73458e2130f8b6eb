"""User rows."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models.user import User


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create(session: Session, *, email: str, password_hash: str, name: str, **fields: Any) -> User:
    user = User(email=normalize_email(email), password_hash=password_hash, name=name.strip(), **fields)
    session.add(user)
    session.flush()
    return user


def get(session: Session, *, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


def get_by_email(session: Session, *, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))


def lock(session: Session, *, user_id: uuid.UUID) -> User | None:
    """The user row, locked until the transaction ends (serialises job admission)."""
    return session.scalar(select(User).where(User.id == user_id).with_for_update())
