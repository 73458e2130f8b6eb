"""SQL text on the session's connection (db/raw.py): inside the session's transaction,
Postgres's errors raised as SQLAlchemy's, and a connection the server ended replaced."""

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from db import raw
from db.session import autocommit_scope, get_engine, session_scope, standalone
from tests import rows


def name_of(user_id) -> str:
    with get_engine().connect() as connection:  # another connection: sees only what is committed
        return connection.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).scalar()


RENAME = "UPDATE users SET name = %(name)s WHERE id = %(id)s"


def test_statements_join_the_sessions_transaction():
    user_id = rows.make_user(name="Ada")
    with pytest.raises(RuntimeError), session_scope() as session:
        assert raw.execute(session, RENAME, {"name": "Grace", "id": user_id}) == 1
        # the session's own statements see it: one connection, one transaction
        assert (
            session.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).scalar()
            == "Grace"
        )
        assert name_of(user_id) == "Ada"  # not committed yet
        raise RuntimeError("roll it back")
    assert name_of(user_id) == "Ada"
    with session_scope() as session:
        raw.execute(session, RENAME, {"name": "Grace", "id": user_id})
    assert name_of(user_id) == "Grace"


def test_rows_come_back_typed():
    user_id = rows.make_user(name="Ada")
    with autocommit_scope() as session:
        row = raw.fetch_one(
            session,
            """SELECT id, '{"role": "teacher"}'::jsonb FROM users WHERE id = %(id)s""",
            {"id": user_id},
        )
        named = raw.fetch_one(
            session, "SELECT id, name FROM users WHERE id = %(id)s", {"id": user_id}, named=True
        )
        missing = raw.fetch_one(session, "SELECT id FROM users WHERE id = %(id)s", {"id": uuid.uuid4()})
    assert row == (user_id, {"role": "teacher"})  # uuid.UUID and the jsonb as a dict
    assert (named.id, named.name) == (user_id, "Ada")
    assert missing is None


def test_a_constraint_violation_is_sqlalchemys_integrity_error():
    user_id = rows.make_user()
    with session_scope() as session:
        email = raw.fetch_one(session, "SELECT email FROM users WHERE id = %(id)s", {"id": user_id})[0]
    with pytest.raises(IntegrityError) as caught, session_scope() as session:
        raw.execute(
            session,
            "INSERT INTO users (id, email, password_hash, name) VALUES (%(id)s, %(email)s, 'x', 'Copy')",
            {"id": uuid.uuid4(), "email": email},
        )
    assert caught.value.orig.pgcode == "23505"  # unique_violation, as psycopg2 reported it


def end_backend(executor) -> int:
    """Have the server end the session's (or connection's) backend, as a restart would."""
    pid = raw.fetch_one(executor, "SELECT pg_backend_pid()", {})[0]
    with get_engine().connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return pid


def test_a_connection_the_server_ended_is_an_operational_error_and_is_replaced():
    with session_scope() as session:
        pid = end_backend(session)
        with pytest.raises(OperationalError) as caught:
            raw.fetch_one(session, "SELECT 1", {})
        assert caught.value.connection_invalidated
        session.rollback()
        assert raw.fetch_one(session, "SELECT pg_backend_pid()", {})[0] != pid  # a new connection


def test_standalone_statements_commit_as_they_run_and_the_connection_goes_back_transactional():
    user_id = rows.make_user(name="Ada")
    with standalone() as connection:
        assert raw.execute(connection, RENAME, {"name": "Grace", "id": user_id}) == 1
        assert name_of(user_id) == "Grace"  # visible to others at once: no transaction
    held = [get_engine().connect() for _ in range(get_engine().pool.size())]
    try:
        assert not any(connection.connection.dbapi_connection.autocommit for connection in held)
    finally:
        for connection in held:
            connection.close()


def test_a_standalone_connection_the_server_ended_is_replaced():
    with standalone() as connection:
        pid = end_backend(connection)
        with pytest.raises(OperationalError) as caught:
            raw.fetch_one(connection, "SELECT 1", {})
        assert caught.value.connection_invalidated
    with standalone() as connection:
        assert raw.fetch_one(connection, "SELECT pg_backend_pid()", {})[0] != pid


NAME_OF = raw.Prepared("SELECT name FROM users WHERE id = %(id)s AND %(n)s::integer = %(n)s::integer")


def prepared_here(connection) -> list[str]:
    return [row[0] for row in raw.fetch_all(connection, "SELECT name FROM pg_prepared_statements", {})]


def test_a_prepared_statement_is_prepared_once_a_connection_and_run_by_name():
    user_id = rows.make_user(name="Ada")
    with standalone() as connection:
        assert raw.fetch_one(connection, NAME_OF, {"id": user_id, "n": 1}) == ("Ada",)
        assert raw.fetch_one(connection, NAME_OF, {"id": uuid.uuid4(), "n": 2}) is None
        assert prepared_here(connection).count(NAME_OF.name) == 1
    with pytest.raises(RuntimeError), session_scope() as session:  # prepared in a transaction that fails
        raw.fetch_one(session, NAME_OF, {"id": user_id, "n": 3})
        raise RuntimeError("roll it back")
    with session_scope() as session:  # still prepared after the rollback: run by name again
        assert raw.fetch_one(session, NAME_OF, {"id": user_id, "n": 4}) == ("Ada",)


def test_a_new_connection_prepares_the_statement_again():
    user_id = rows.make_user(name="Ada")
    with standalone() as connection:
        raw.fetch_one(connection, NAME_OF, {"id": user_id, "n": 1})
        end_backend(connection)
        with pytest.raises(OperationalError):
            raw.fetch_one(connection, NAME_OF, {"id": user_id, "n": 2})
    with standalone() as connection:
        assert raw.fetch_one(connection, NAME_OF, {"id": user_id, "n": 3}) == ("Ada",)
        assert NAME_OF.name in prepared_here(connection)
