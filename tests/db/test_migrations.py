"""Migrations build a fresh database from nothing and take it down again."""

import ast
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from tests.conftest import ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_LOCK = int.from_bytes(b"cnvymigr", "big") >> 1  # as db/migrations/env.py takes it


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


def test_two_upgrades_at_once_wait_for_each_other_and_both_succeed(empty_database):
    """As two hosts starting together do: the advisory lock makes the second wait, then
    find the database at head."""
    env = {**os.environ, "DATABASE_URL": empty_database}
    upgrades = [
        subprocess.Popen(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [upgrade.communicate(timeout=120)[0].decode(errors="replace") for upgrade in upgrades]
    assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
    engine = create_engine(empty_database)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        # Both let go of the lock: a third upgrade (the next deploy) would not wait.
        released = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK}
        ).scalar()
    engine.dispose()
    head = ScriptDirectory.from_config(Config("alembic.ini")).get_current_head()
    assert versions == [head] and released


def unconcurrent_index_builds(source: str) -> list[str]:
    """Index builds in a migration's source that would block writes to an existing table:
    op.create_index on a table the migration did not create, unless concurrently inside an
    autocommit block, and CREATE INDEX in raw SQL without CONCURRENTLY."""
    tree = ast.parse(source)
    created = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _op_call(node) == "create_table"
        and isinstance(node.args[0], ast.Constant)
    }
    in_autocommit = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.With)
        and any(_op_call(item.context_expr) == "autocommit_block" for item in node.items)
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if _op_call(node) == "create_index" and len(node.args) > 1:
            table = node.args[1].value if isinstance(node.args[1], ast.Constant) else None
            concurrently = any(
                keyword.arg == "postgresql_concurrently" and getattr(keyword.value, "value", False)
                for keyword in node.keywords
            )
            if table not in created and not (concurrently and id(node) in in_autocommit):
                found.append(f"create_index on {table}")
        if _op_call(node) == "execute" and node.args and isinstance(node.args[0], ast.Constant):
            statement = str(node.args[0].value).upper()
            if re.search(r"CREATE\s+(UNIQUE\s+)?INDEX", statement) and "CONCURRENTLY" not in statement:
                found.append(statement.strip()[:60])
    return found


def _op_call(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


FIRST_RULED = 14  # migrations from 0014 on build indexes on existing tables concurrently


def test_new_migrations_build_indexes_on_existing_tables_concurrently():
    ruled = [
        path
        for path in (ROOT / "db" / "migrations" / "versions").glob("*.py")
        if int(path.name.split("_", 1)[0]) >= FIRST_RULED
    ]
    for path in ruled:
        assert unconcurrent_index_builds(path.read_text()) == [], path.name


def test_the_index_rule_catches_a_blocking_build():
    blocking = 'op.create_index("ix_jobs_x", "jobs", ["x"])'
    assert unconcurrent_index_builds(blocking) == ["create_index on jobs"]
    assert unconcurrent_index_builds('op.execute("CREATE INDEX ix ON jobs (x)")') == [
        "CREATE INDEX IX ON JOBS (X)"
    ]
    concurrent = (
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ix_jobs_x", "jobs", ["x"], postgresql_concurrently=True)\n'
    )
    assert unconcurrent_index_builds(concurrent) == []
    new_table = 'op.create_table("things", sa.Column("x"))\nop.create_index("ix_things_x", "things", ["x"])'
    assert unconcurrent_index_builds(new_table) == []
    # The rule, applied to an existing migration that predates it, sees its blocking build.
    old = (ROOT / "db" / "migrations" / "versions" / "0008_admission_index.py").read_text()
    assert unconcurrent_index_builds(old) == ["create_index on jobs"]
