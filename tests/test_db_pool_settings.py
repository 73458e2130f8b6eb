"""DB_POOL_SIZE and DB_MAX_OVERFLOW size each process's Postgres pool (the web's and the workers');
DB_CONNECT_TIMEOUT and the statement timeouts bound how long its connections wait;
DB_PREPARED_STATEMENTS lets them run behind a transaction pooler."""

import dataclasses
import socket

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from db import raw
from db.session import init_engine_from, session_scope, standalone
from settings import ConfigError, Settings
from tests import rows


def test_the_pool_keeps_fifteen_unless_configured():
    assert (Settings.from_env({}).db_pool_size, Settings.from_env({}).db_max_overflow) == (15, 0)
    settings = Settings.from_env({"DB_POOL_SIZE": "40", "DB_MAX_OVERFLOW": "0"})
    assert (settings.db_pool_size, settings.db_max_overflow) == (40, 0)


@pytest.mark.parametrize(
    "env",
    [{"DB_POOL_SIZE": "0"}, {"DB_MAX_OVERFLOW": "-1"}],
)
def test_an_impossible_pool_is_refused(env):
    with pytest.raises(ConfigError, match="DB_POOL_SIZE must be at least 1 and DB_MAX_OVERFLOW not negative"):
        Settings.from_env(env)


def test_a_bad_number_names_the_variable():
    with pytest.raises(ConfigError, match="DB_POOL_SIZE must be a whole number"):
        Settings.from_env({"DB_POOL_SIZE": "many"})


def test_the_web_app_sizes_its_pool_from_the_settings(settings, monkeypatch):
    from api import create_app
    from db import session
    from db.session import get_engine

    made = []
    monkeypatch.setattr(session, "create_engine", lambda *a, **kw: made.append(kw) or create_engine(*a, **kw))
    create_app(dataclasses.replace(settings, db_pool_size=3, db_max_overflow=2))
    pool = get_engine().pool
    assert (made[-1]["pool_size"], made[-1]["max_overflow"]) == (3, 2)
    connections = [pool.connect() for _ in range(3 + 2)]  # the pool and its whole overflow
    assert (pool.size(), pool.overflow(), pool.checkedout()) == (3, 2, 5)
    for connection in connections:
        connection.close()
    monkeypatch.undo()
    create_app(settings)  # the rest of the run gets the configured pool back
    assert get_engine().pool.size() == settings.db_pool_size


def test_timeouts_and_prepared_statements_have_defaults_and_are_checked():
    defaults = Settings.from_env({})
    assert defaults.db_prepared_statements is True
    assert (defaults.db_connect_timeout, defaults.db_statement_timeout) == (5, 30.0)
    assert defaults.db_worker_statement_timeout == 300.0
    for text_value, value in [("false", False), ("0", False), ("off", False), ("TRUE", True), ("yes", True)]:
        assert Settings.from_env({"DB_PREPARED_STATEMENTS": text_value}).db_prepared_statements is value
    with pytest.raises(ConfigError, match="DB_PREPARED_STATEMENTS must be true or false, got 'sometimes'"):
        Settings.from_env({"DB_PREPARED_STATEMENTS": "sometimes"})
    with pytest.raises(ConfigError, match="DB_CONNECT_TIMEOUT must be at least 2"):
        Settings.from_env({"DB_CONNECT_TIMEOUT": "1"})
    with pytest.raises(ConfigError, match="DB_STATEMENT_TIMEOUT must not be negative"):
        Settings.from_env({"DB_STATEMENT_TIMEOUT": "-1"})


@pytest.fixture
def restore_engine(settings):
    yield
    init_engine_from(settings)  # the rest of the run gets the configured engine back


def statement_timeout() -> str:
    with session_scope() as session:
        return session.execute(text("SHOW statement_timeout")).scalar()


def test_web_statements_are_cut_off_at_the_web_timeout(settings, restore_engine):
    from api import create_app

    create_app(dataclasses.replace(settings, db_statement_timeout=0.5))
    assert statement_timeout() == "500ms"
    cancelled = pytest.raises(OperationalError, match="canceling statement due to statement timeout")
    with cancelled, session_scope() as session:
        session.execute(text("SELECT pg_sleep(3)"))
    with session_scope() as session:  # the connection is fine for the next statement
        assert session.execute(text("SELECT 1")).scalar() == 1


def test_workers_get_their_own_statement_timeout_and_zero_leaves_the_servers(settings, restore_engine):
    init_engine_from(dataclasses.replace(settings, db_worker_statement_timeout=90))
    assert statement_timeout() == "90s"
    init_engine_from(dataclasses.replace(settings, db_worker_statement_timeout=0))
    assert statement_timeout() == "0"  # the server's default: no limit


def test_a_server_that_never_answers_fails_the_connection_at_the_connect_timeout(settings, restore_engine):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never speaks
        port = silent.getsockname()[1]
        init_engine_from(
            dataclasses.replace(
                settings,
                database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{port}/x",
                db_connect_timeout=2,
            )
        )
        with pytest.raises(OperationalError, match="timeout expired"), session_scope() as session:
            session.execute(text("SELECT 1"))


NAME_OF = raw.Prepared("SELECT name FROM users WHERE id = %(id)s AND %(n)s::integer = %(n)s::integer")


def test_without_prepared_statements_the_same_statement_runs_as_plain_sql(settings, restore_engine):
    init_engine_from(dataclasses.replace(settings, db_prepared_statements=False))
    user_id = rows.make_user(name="Ada")
    with standalone() as connection:
        assert raw.fetch_one(connection, NAME_OF, {"id": user_id, "n": 1}) == ("Ada",)
        assert raw.fetch_all(connection, NAME_OF, {"id": user_id, "n": 2}, named=True)[0].name == "Ada"
        prepared = raw.fetch_all(connection, "SELECT name FROM pg_prepared_statements", {})
    assert prepared == []  # nothing a transaction pooler would lose between transactions
