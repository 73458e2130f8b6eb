"""The unit-of-work scopes: session_scope's one transaction, autocommit_scope's statements."""

import pytest
from sqlalchemy import text

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
