"""User rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, func, literal, select, text, update
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from db import raw
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


def get_open(session: Session, *, user_id: uuid.UUID) -> User | None:
    """The user, unless the account does not exist or was closed."""
    user = session.get(User, user_id)
    return None if user is None or user.deleted_at is not None else user


def get_by_email(session: Session, *, email: str, lock: bool = False) -> User | None:
    """`lock`: hold the row until the transaction ends (FOR NO KEY UPDATE, as `lock` below)."""
    query = select(User).where(func.lower(User.email) == normalize_email(email))
    return session.scalar(query.with_for_update(key_share=True) if lock else query)


def id_of(session: Session, *, id_or_email: str) -> uuid.UUID | None:
    """A user named by id or by email (as an operator's filter names one); None for an
    email no account has. An id is taken as it is: unknown, it matches nothing."""
    try:
        return uuid.UUID(id_or_email)
    except ValueError:
        found = get_by_email(session, email=id_or_email)
        return found.id if found is not None else None


@dataclass(frozen=True)
class Caller:
    """Who is calling, as a submit needs them: no ORM row (see get_caller)."""

    id: uuid.UUID
    plan: str
    name: str
    profile: dict[str, Any]
    email_verified: bool  # until it is, the plan's allowance is smaller (workers.plans.allowance)

    @classmethod
    def of(cls, user: User) -> Caller:
        return cls(user.id, user.plan, user.name, user.profile or {}, user.email_verified)


def get_caller(session: raw.Executor, *, user_id: uuid.UUID) -> Caller | None:
    """The caller's id, plan, name, profile and whether their email is verified, unless
    the account does not exist or was closed. SQL text (db/raw.py): every submit reads
    it, and an ORM `User` costs several times the statement."""
    row = raw.fetch_one(session, _CALLER, {"user_id": user_id})
    return Caller(*row) if row is not None else None


_CALLER = raw.Prepared(
    "SELECT id, plan, name, profile, email_verified_at IS NOT NULL FROM users "
    "WHERE id = %(user_id)s AND deleted_at IS NULL"
)


def lock(session: Session, *, user_id: uuid.UUID) -> str | None:
    """Lock the user's row until the transaction ends (serialises job admission) and
    return their plan; None if there is no such user. FOR NO KEY UPDATE: two
    admissions of a user wait for each other, but rows that merely refer to the user
    (a finishing job's ledger rows, whose foreign-key check takes a KEY SHARE lock) do
    not wait for an admission, so the two cannot deadlock. SQL text (db/raw.py): every
    submit takes it."""
    row = raw.fetch_one(session, _LOCK, {"user_id": user_id})
    return row[0] if row is not None else None


_LOCK = raw.Prepared("SELECT plan FROM users WHERE id = %(user_id)s FOR NO KEY UPDATE")


def update_fields(session: Session, *, user: User, **fields: Any) -> User:
    """Change plain fields of the user (name, profile); the caller commits."""
    for name, value in fields.items():
        setattr(user, name, value)
    session.flush()
    return user


def mark_deleted(session: Session, *, user_id: uuid.UUID) -> bool:
    """Lock the account out for good (compare-and-set: only the first request counts)."""
    result = session.execute(
        update(User).where(User.id == user_id, User.deleted_at.is_(None)).values(deleted_at=func.now())
    )
    return result.rowcount == 1


def ids_pending_deletion(
    session: Session, *, marked_before_seconds: int, limit: int = 100
) -> list[uuid.UUID]:
    """Accounts marked for deletion that long ago and still here (their task was lost)."""
    cutoff = func.now() - text("make_interval(secs => :age)").bindparams(age=marked_before_seconds)
    return list(
        session.scalars(
            select(User.id).where(User.deleted_at.is_not(None), User.deleted_at < cutoff).limit(limit)
        )
    )


def delete(session: Session, *, user_id: uuid.UUID) -> bool:
    """Delete the row; jobs, keys, tokens and the rest go with it (ON DELETE CASCADE)."""
    result = session.execute(sa_delete(User).where(User.id == user_id))
    return result.rowcount == 1


def set_password_hash(session: Session, *, user_id: uuid.UUID, old_hash: str, new_hash: str) -> bool:
    """Compare-and-set on the old hash, so that one reset link changes the password once."""
    result = session.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == old_hash)
        .values(password_hash=new_hash)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def mark_email_verified(session: Session, *, user_id: uuid.UUID, email: str) -> bool:
    """Verify the address if it is still the user's; False if already verified (or changed)."""
    result = session.execute(
        update(User)
        .where(
            User.id == user_id,
            func.lower(User.email) == normalize_email(email),
            User.email_verified_at.is_(None),
        )
        .values(email_verified_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def merge_profile(
    session: Session, *, user_id: uuid.UUID, values: dict[str, Any], remove: list[str]
) -> dict[str, Any]:
    """Set and remove profile keys in one statement (two concurrent edits of
    different keys both stick); returns the new profile."""
    merged = User.profile.op("||")(literal(values, type_=JSONB)).op("-", return_type=JSONB)(
        literal(remove, type_=ARRAY(Text))
    )
    return session.scalar(
        update(User)
        .where(User.id == user_id)
        .values(profile=merged)
        .returning(User.profile)
        .execution_options(synchronize_session=False)
    )
