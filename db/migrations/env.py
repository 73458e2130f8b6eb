"""Alembic environment: the URL comes from settings (DATABASE_URL) unless the
caller put one on the config (the tests do).

An upgrade holds a Postgres advisory lock for its whole run: hosts that start together
each run `alembic upgrade head`, and without it they would race to create the same
tables. The second waits, then finds the database at head and does nothing. The lock
is the session's (not a transaction's), so it also holds across a migration's
`autocommit_block()`, where CREATE INDEX CONCURRENTLY runs (see docs/operations.md).
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

import db.models  # noqa: F401 - registers every table on the metadata
from db.base import Base

config = context.config
# A fixed key every Conveyor release uses: the bytes of "cnvymigr", kept positive.
MIGRATION_LOCK = int.from_bytes(b"cnvymigr", "big") >> 1
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from settings import get_settings

    return get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()  # the lock outlives this transaction; the migrations open their own
        try:
            context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
