"""DB_POOL_SIZE and DB_MAX_OVERFLOW size each process's Postgres pool (the web's and the workers')."""

import dataclasses

import pytest
from sqlalchemy import create_engine

from settings import ConfigError, Settings


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
