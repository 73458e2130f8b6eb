"""Engine and session handling for the web app and the workers.

One scoped session per thread (or greenlet): Flask removes it at the end of each
request, Celery after each task, and a forked worker disposes the engine it
inherited so that no connection is shared across processes.

Work whose every statement stands alone (a read, a compare-and-set UPDATE) can run
outside a transaction (`autocommit`, `autocommit_scope`): each statement commits as
it runs, so no BEGIN and COMMIT or ROLLBACK go to the server: one round trip, not
three. psycopg2's `autocommit` is switched on the checked-out connection and off
again when it goes back to the pool, as SQLAlchemy's own pre-ping does; SQLAlchemy's
`isolation_level="AUTOCOMMIT"` option would do the same but reset the connection
with an extra `SET default_transaction_isolation` on check-in.

A pooled connection is checked before it is handed out (`_check_on_checkout`), in
place of SQLAlchemy's pre-ping, which is a round trip on every check-out. A
connection back in use within `PING_AFTER_IDLE` seconds is checked by looking at its
socket without waiting: a server that restarted or ended the session has sent its
termination notice or closed the socket, which makes it readable. Only then, or after
a longer idle spell (a link that died without a word), is it pinged; a failed ping
swaps the connection for a new one, as the pre-ping does.

Each connection is opened with the settings' connect timeout and, as a startup
option, their statement timeout (a web request's is short, a worker's sweep may take
longer): a server that stops answering, or a statement stuck behind a lock, fails the
request or task instead of holding its connection. A transaction pooler such as
PgBouncer refuses startup options (its server connections serve every client in
turn): behind one the timeouts here are 0 and the role carries its own
(docs/deployment.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg2 import Error as DatabaseError
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from db.sockets import has_input

if TYPE_CHECKING:
    from settings import Settings

_factory = sessionmaker(expire_on_commit=False)
db_session: scoped_session[Session] = scoped_session(_factory)
_engine: Engine | None = None
_prepared_statements = True  # db/raw.py prepares its hot statements (see init_engine)

PING_AFTER_IDLE = 5.0  # seconds in the pool after which a connection is pinged before use
_RETURNED = "conveyor_returned_at"


def init_engine(url: str, *, prepared_statements: bool = True, **options) -> Engine:
    """Bind the session factory to a new engine for `url` (replacing any earlier one).

    Without `prepared_statements`, db/raw.py sends its prepared statements as plain
    parameterised SQL, which a transaction pooler can carry."""
    global _engine, _prepared_statements
    if _engine is not None:
        _engine.dispose()
    _prepared_statements = prepared_statements
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    engine = _engine = create_engine(url, **options)
    event.listen(engine, "connect", _stamp)
    event.listen(engine, "checkin", _returned)
    event.listen(engine, "checkout", lambda conn, record, _proxy: _check_on_checkout(engine, conn, record))
    _factory.configure(bind=engine)
    return engine


def init_engine_from(settings: Settings, *, web: bool = False) -> Engine:
    """The engine of a web process (`web`), or of a worker, the beat or a script, as the
    settings size and time it."""
    timeout = settings.db_statement_timeout if web else settings.db_worker_statement_timeout
    return init_engine(
        settings.database_url,
        prepared_statements=settings.db_prepared_statements,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args=connect_args(connect_timeout=settings.db_connect_timeout, statement_timeout=timeout),
    )


def connect_args(*, connect_timeout: int, statement_timeout: float) -> dict[str, Any]:
    """libpq's connect timeout, and the statement timeout as a startup option unless 0."""
    args: dict[str, Any] = {"connect_timeout": connect_timeout}
    if statement_timeout > 0:
        args["options"] = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"  # ms; 0 is none
    return args


def prepared_statements() -> bool:
    """Whether db/raw.py prepares its hot statements on each connection."""
    return _prepared_statements


def _stamp(_dbapi_connection, record) -> None:
    record.info[_RETURNED] = time.monotonic()


def _returned(dbapi_connection, record) -> None:
    """Back in the pool: transactional again (see above), and when, for the next check-out."""
    if dbapi_connection is not None and not dbapi_connection.closed and dbapi_connection.autocommit:
        dbapi_connection.autocommit = False
    if record is not None:
        record.info[_RETURNED] = time.monotonic()


def _check_on_checkout(engine: Engine, dbapi_connection, record) -> None:
    idle = time.monotonic() - record.info.get(_RETURNED, 0.0)
    try:  # fileno() of a connection psycopg2 has closed raises too
        if idle < PING_AFTER_IDLE and not has_input(dbapi_connection.fileno()):
            return
        engine.dialect.do_ping(dbapi_connection)
    except DatabaseError as error:  # the pool retries with a new connection
        raise DisconnectionError(f"The pooled connection is gone: {error}".strip()) from error


def get_engine() -> Engine:
    if _engine is None:
        from settings import get_settings

        return init_engine_from(get_settings())
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
def standalone() -> Iterator[PoolProxiedConnection]:
    """A pooled connection outside any transaction and without a Session, for work
    whose every statement stands alone and is SQL text (db/raw.py accepts it in place
    of a session): a worker's take, outcome and read of the owner's waiting jobs. A
    Session's own bookkeeping (its transaction's states, the connection's wrapper)
    costs more CPU a scope than the statement it runs. Back in the pool
    the connection is transactional again (`_returned`)."""
    engine = get_engine()
    try:
        connection = engine.raw_connection()
    except DatabaseError as error:  # raised as the engine's are: a database away is OperationalError
        raise DBAPIError.instance(None, None, error, DatabaseError, dialect=engine.dialect) from error
    try:
        try:
            connection.dbapi_connection.autocommit = True
        except DatabaseError as error:
            connection.invalidate(error)
            raise DBAPIError.instance(
                None, None, error, DatabaseError, connection_invalidated=True, dialect=engine.dialect
            ) from error
        yield connection
    finally:
        connection.close()


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
