"""Engine and session handling for the web app and the workers.

One scoped session per thread (or greenlet): Flask removes it at the end of each
request, Celery after each task, and a forked worker disposes the engine it
inherited so that no connection is shared across processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

_factory = sessionmaker(expire_on_commit=False)
db_session: scoped_session[Session] = scoped_session(_factory)
_engine: Engine | None = None


def init_engine(url: str, **options) -> Engine:
    """Bind the session factory to a new engine for `url` (replacing any earlier one)."""
    global _engine
    if _engine is not None:
        _engine.dispose()
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    _engine = create_engine(url, **options)
    _factory.configure(bind=_engine)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        from settings import get_settings

        settings = get_settings()
        return init_engine(
            settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
    return _engine


def dispose_engine() -> None:
    """Drop pooled connections inherited across fork; the pool reconnects lazily."""
    if _engine is not None:
        _engine.dispose(close=False)


def remove_session() -> None:
    db_session.remove()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A short unit of work: commit on success, roll back on error, always release."""
    get_engine()
    session = _factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit_scope() -> Iterator[Session]:
    """For work whose every statement stands alone (a compare-and-set UPDATE, a read):
    each statement commits as it runs, so no BEGIN and COMMIT go to the server, two
    round trips of the four a single statement otherwise costs.

    psycopg2's `autocommit` is switched on the checked-out connection and back before
    it returns to the pool, as SQLAlchemy's own pre-ping does. SQLAlchemy's
    `isolation_level="AUTOCOMMIT"` option would do the same but reset the connection
    with an extra `SET default_transaction_isolation` on check-in."""
    get_engine()
    session = _factory()
    raw = session.connection().connection.dbapi_connection
    raw.autocommit = True
    try:
        yield session
        session.commit()  # nothing to send: ends SQLAlchemy's bookkeeping
    except BaseException:
        session.rollback()
        raise
    finally:
        if raw is not None and not raw.closed:  # a lost connection is discarded anyway
            raw.autocommit = False
        session.close()
