"""Statements written as SQL, run on the session's own connection, for the hot paths.

A statement through SQLAlchemy costs the web several times what the same statement
costs on the DBAPI cursor (the ORM's query context, the execution context, result
metadata), and more than the round trip itself. A submit runs four and a poll one,
so the statements they run on every request are SQL text here, executed on
the connection the session already holds, inside its transaction (or outside one, under
`db.session.autocommit`): a rollback of the session undoes them like any other. Work
that is SQL text only can run on a pooled connection without a Session
(`db.session.standalone`).

What stays SQLAlchemy's: errors are raised as SQLAlchemy's exceptions
(`IntegrityError`, `OperationalError`, ...) with psycopg2's as `.orig`, and a
connection found dead is invalidated, as the engine would do, so that the caller's
rollback gets a new one. Parameters use psycopg2's `%(name)s` style; the session's
connection already turns `uuid` and `jsonb` columns into `uuid.UUID` and Python values.
Pending ORM changes are not flushed first: call these before adding objects, or flush.
"""

from __future__ import annotations

import hashlib
import re
from collections import namedtuple
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from psycopg2 import Error as DatabaseError
from sqlalchemy.engine.interfaces import PoolProxiedConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.session import get_engine, prepared_statements

Params = Mapping[str, Any]
# A session, or a pooled connection outside one (db.session.standalone).
Executor = Session | PoolProxiedConnection
_PREPARED = "conveyor_prepared"  # the names prepared on a connection, in its pool record's info
_PARAM = re.compile(r"%\((\w+)\)s")


class Prepared:
    """A statement Postgres parses and plans once per connection (PREPARE), then runs
    by name (EXECUTE): parsing and planning a statement again on every run costs the
    server CPU that, on a small machine, is taken from the web and the workers.

    Written like any statement here, with `%(name)s` parameters; a parameter whose type
    its place does not say (a SELECT list, a comparison of two parameters) needs a cast
    (`%(limit)s::bigint`), or Postgres takes it for text. A statement is prepared on a
    connection the first time it runs there; prepared statements outlive a rollback and
    go with the connection. Each connection must be a Postgres session of its own: a
    proxy that pools by transaction (PgBouncer's transaction mode) cannot carry them,
    so there (DB_PREPARED_STATEMENTS=false) the statement runs as plain SQL, with the
    same parameters and results."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.names: list[str] = []
        numbered = _PARAM.sub(self._number, sql).replace("%%", "%")
        self.name = "conveyor_" + hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:16]
        self.prepare = f"PREPARE {self.name} AS {numbered}"
        arguments = ", ".join(["%s"] * len(self.names))
        self.execute = f"EXECUTE {self.name} ({arguments})" if self.names else f"EXECUTE {self.name}"

    def _number(self, match: re.Match) -> str:
        name = match.group(1)
        if name not in self.names:
            self.names.append(name)
        return f"${self.names.index(name) + 1}"

    def __str__(self) -> str:
        return self.sql


Statement = str | Prepared


def fetch_one(session: Executor, sql: Statement, params: Params, *, named: bool = False) -> Any:
    """The first row (a tuple, or a named tuple with `named`), or None."""
    with _cursor(session, sql, params) as cursor:
        row = cursor.fetchone()
        return _record(sql, cursor)._make(row) if named and row is not None else row


def fetch_all(session: Executor, sql: Statement, params: Params, *, named: bool = False) -> list[Any]:
    with _cursor(session, sql, params) as cursor:
        rows = cursor.fetchall()
        return list(map(_record(sql, cursor)._make, rows)) if named else rows


def execute(session: Executor, sql: Statement, params: Params) -> int:
    """Run a statement that returns no rows; the number of rows it changed."""
    with _cursor(session, sql, params) as cursor:
        return cursor.rowcount


_records: dict[Statement, type] = {}


def _record(sql: Statement, cursor: Any) -> type:
    """The named tuple for a statement's rows, made from its first result's columns and
    kept: psycopg2's NamedTupleCursor builds the cursor's column descriptions for every
    result to find the (cached) type, on every poll."""
    record = _records.get(sql)
    if record is None:
        record = _records[sql] = namedtuple("Row", [column.name for column in cursor.description])
    return record


@contextmanager
def _cursor(session: Executor, sql: Statement, params: Params) -> Iterator[Any]:
    if isinstance(session, Session):
        connection = session.connection()
        pooled, dialect = connection.connection, connection.dialect
    else:  # db.session.standalone(): a pooled connection of the session's engine
        pooled, dialect = session, get_engine().dialect
    dbapi_connection = pooled.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        if isinstance(sql, Prepared) and prepared_statements():
            prepared = pooled.info.setdefault(_PREPARED, set())
            if sql.name not in prepared:
                cursor.execute(sql.prepare)
                prepared.add(sql.name)
            cursor.execute(sql.execute, [params[name] for name in sql.names])
        else:
            cursor.execute(str(sql), params)
        yield cursor
    except DatabaseError as error:
        lost = dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            pooled.invalidate(error)
        raise DBAPIError.instance(
            str(sql), params, error, DatabaseError, connection_invalidated=lost, dialect=dialect
        ) from error
    finally:
        if not cursor.closed and not dbapi_connection.closed:
            cursor.close()
