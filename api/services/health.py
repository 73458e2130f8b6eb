"""Readiness: can this process reach what it needs, and is anyone consuming the queues?"""

from __future__ import annotations

from sqlalchemy import text

from db.redis_client import get_redis
from db.session import session_scope
from workers import queues
from workers.celery_app import app as celery_app


def queue_names() -> list[str]:
    """The queues Celery routes to (celeryconfig.task_queues), in their configured order."""
    return [queue.name for queue in celery_app.conf.task_queues]


def check_dependencies() -> dict[str, str]:
    """Each part → "ok" or "unavailable: <why>". The worker check reads the heartbeats
    workers leave in Redis (one round trip), so it is as fast as the Redis ping and
    never waits on a worker; the heartbeats themselves are a few seconds old at most."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    checks["workers"] = _check_workers() if checks["redis"] == "ok" else "unknown: Redis is unavailable"
    return checks


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


def _check_workers() -> str:
    try:
        found = queues.workers_by_queue(get_redis(), queue_names())
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    idle = [name for name, workers in found.items() if not workers]
    if idle:
        return f"unavailable: no live worker consumes {', '.join(idle)}"
    return "ok"
