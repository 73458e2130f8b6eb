"""The unit-of-work scopes (session_scope's one transaction, autocommit_scope's statements),
and the pool's check of a connection before it is handed out."""

import time

import psycopg2
import pytest
from sqlalchemy import text

import db.session as session_module
from db.session import autocommit_scope, get_engine, session_scope
from tests import rows


def name_of(user_id) -> str:
    with get_engine().connect() as connection:  # another connection: sees only what is committed
        return connection.execute(text("SELECT name FROM users WHERE id = :id"), {"id": user_id}).scalar()


def rename(session, user_id, name: str) -> None:
    session.execute(text("UPDATE users SET name = :name WHERE id = :id"), {"name": name, "id": user_id})


def test_autocommit_scope_commits_each_statement_as_it_runs():
    user_id = rows.make_user(name="Ada")
    with autocommit_scope() as session:
        rename(session, user_id, "Grace")
        assert name_of(user_id) == "Grace"  # visible to others before the scope ends


def test_autocommit_scope_keeps_what_ran_before_an_error():
    user_id = rows.make_user(name="Ada")
    with pytest.raises(RuntimeError), autocommit_scope() as session:
        rename(session, user_id, "Grace")
        raise RuntimeError("after the statement")
    assert name_of(user_id) == "Grace"


def test_connections_go_back_to_the_pool_transactional():
    user_id = rows.make_user(name="Ada")
    pool_size = get_engine().pool.size()
    for _ in range(pool_size):
        with autocommit_scope() as session:
            session.execute(text("SELECT 1"))
    held = [get_engine().connect() for _ in range(pool_size)]  # every pooled connection at once
    try:
        assert not any(connection.connection.dbapi_connection.autocommit for connection in held)
    finally:
        for connection in held:
            connection.close()
    with pytest.raises(RuntimeError), session_scope() as session:  # so a later scope can roll back
        rename(session, user_id, "Grace")
        raise RuntimeError("roll it back")
    assert name_of(user_id) == "Ada"


def backend_pid(session) -> int:
    return session.execute(text("SELECT pg_backend_pid()")).scalar()


def end_backends(pids) -> None:
    """As an operator's pg_terminate_backend, or a restart, does: from outside the pool."""
    url = get_engine().url.set(drivername="postgresql")
    connection = psycopg2.connect(url.render_as_string(hide_password=False))
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s) AS pid", (list(pids),))
    finally:
        connection.close()


def pooled_backends() -> list[int]:
    """The server's process ids of every connection in the pool (filled up to its size)."""
    held = [get_engine().connect() for _ in range(get_engine().pool.size())]
    try:
        return [connection.execute(text("SELECT pg_backend_pid()")).scalar() for connection in held]
    finally:
        for connection in held:
            connection.close()


def test_connections_the_server_ended_in_the_pool_are_replaced_unseen():
    """A database restart (or an operator ending sessions) between two requests: the
    next ones get working connections, without a ping: the server's notice and close
    have made each pooled socket readable."""
    user_id = rows.make_user(name="Ada")
    pids = pooled_backends()
    end_backends(pids)
    time.sleep(0.2)  # the notice and the close reach the pooled sockets
    with session_scope() as session:
        rename(session, user_id, "Grace")
    assert name_of(user_id) == "Grace"
    assert not set(pooled_backends()) & set(pids)


def test_a_connection_back_in_use_at_once_is_not_pinged_and_one_idle_long_is(monkeypatch):
    pings = []
    dialect = get_engine().dialect
    real_ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda connection: pings.append(1) or real_ping(connection))
    for _ in range(3):
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    assert pings == []

    monkeypatch.setattr(session_module, "PING_AFTER_IDLE", 0.05)
    time.sleep(0.1)
    with session_scope() as session:
        session.execute(text("SELECT 1"))
    assert pings == [1]


def test_a_connection_whose_link_died_silently_is_replaced_after_its_ping(monkeypatch):
    """No word from the server (a dropped link): after a long idle spell the ping fails
    and the pool hands out a new connection instead."""
    before = pooled_backends()
    monkeypatch.setattr(session_module, "PING_AFTER_IDLE", 0.0)
    dialect = get_engine().dialect
    real_ping = dialect.do_ping

    def ping(connection):
        if connection.get_backend_pid() in before:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return real_ping(connection)

    monkeypatch.setattr(dialect, "do_ping", ping)
    with session_scope() as session:
        assert backend_pid(session) not in before
