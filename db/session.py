"""Engine and session handling for the web app and the workers.

One scoped session per thread (or greenlet): Flask removes it at the end of each
request, Celery after each task, and a forked worker disposes the engine it
inherited so that no connection is shared across processes.

Work whose every statement stands alone (a read, a compare-and-set UPDATE) can run
outside a transaction (`autocommit`, `autocommit_scope`): each statement commits as
it runs, so no BEGIN and COMMIT or ROLLBACK go to the server, two round trips of the
four a single statement otherwise costs with the pool's pre-ping. psycopg2's
`autocommit` is switched on the checked-out connection and off again when it goes
back to the pool, as SQLAlchemy's own pre-ping does; SQLAlchemy's
`isolation_level="AUTOCOMMIT"` option would do the same but reset the connection
with an extra `SET default_transaction_isolation` on check-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Engine, create_engine, event
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
    event.listen(_engine, "checkin", _transactional_again)
    _factory.configure(bind=_engine)
    return _engine


def _transactional_again(dbapi_connection, _record) -> None:
    if dbapi_connection is not None and not dbapi_connection.closed and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False


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


def autocommit(session: Session) -> Session:
    """From here on, each of the session's statements commits as it runs (see above),
    until its connection goes back to the pool. A session already inside a transaction
    is left in it."""
    raw = session.connection().connection.dbapi_connection
    if raw is not None and raw.info.transaction_status == TRANSACTION_STATUS_IDLE:
        raw.autocommit = True
    return session


@contextmanager
def autocommit_scope() -> Iterator[Session]:
    """session_scope for work whose every statement stands alone: no transaction."""
    get_engine()
    session = _factory()
    try:
        yield autocommit(session)
        session.commit()  # nothing to send: ends SQLAlchemy's bookkeeping
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
