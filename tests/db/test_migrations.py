"""Migrations build a fresh database from nothing and take it down again."""

import uuid

import psycopg2
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

from tests.conftest import ADMIN_URL


@pytest.fixture
def empty_database(settings):
    name = f"conveyor_migrate_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(ADMIN_URL)
    connection.autocommit = True
    connection.cursor().execute(f'CREATE DATABASE "{name}"')
    url = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    connection.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    connection.close()


def test_upgrade_to_head_then_downgrade_to_base(empty_database):
    config = Config("alembic.ini")
    config.attributes["configure_logger"] = False
    config.set_main_option("sqlalchemy.url", empty_database)
    engine = create_engine(empty_database)

    command.upgrade(config, "head")
    tables = set(inspect(engine).get_table_names())
    assert {"users", "jobs", "alembic_version"} <= tables

    command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}

    command.upgrade(config, "head")  # and back up: the downgrade left nothing behind
    engine.dispose()


def test_the_models_and_the_migrations_agree(empty_database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.base import Base

    config = Config("alembic.ini")
    config.attributes["configure_logger"] = False
    config.set_main_option("sqlalchemy.url", empty_database)
    command.upgrade(config, "head")
    engine = create_engine(empty_database)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []
