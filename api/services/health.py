"""Readiness: can this process reach what it needs?"""

from __future__ import annotations

from sqlalchemy import text

from db.redis_client import get_redis
from db.session import session_scope


def check_dependencies() -> dict[str, str]:
    return {"database": _check_database(), "redis": _check_redis()}


def _check_database() -> str:
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"


def _check_redis() -> str:
    try:
        get_redis().ping()
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"
