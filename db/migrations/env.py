"""Alembic environment: the URL comes from settings (DATABASE_URL) unless the
caller put one on the config (the tests do).

An upgrade holds a Postgres advisory lock for its whole run: hosts that start together
each run `alembic upgrade head`, and without it they would race to create the same
tables. The second waits, then finds the database at head and does nothing. The lock
is the session's (not a transaction's), so it also holds across a migration's
`autocommit_block()`, where CREATE INDEX CONCURRENTLY runs (see docs/operations.md).
"""

import time
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

import db.models  # noqa: F401 - registers every table on the metadata
from db.base import Base

config = context.config
# A fixed key every Conveyor release uses: the bytes of "cnvymigr", kept positive.
MIGRATION_LOCK = int.from_bytes(b"cnvymigr", "big") >> 1
LOCK_POLL = 0.5  # seconds between a waiting upgrade's asks for the lock
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


def _lock(connection) -> None:
    """Take the migration lock, asking again each LOCK_POLL seconds rather than blocking in
    pg_advisory_lock: a blocked call holds its statement's snapshot, and CREATE INDEX
    CONCURRENTLY in the upgrade that holds the lock waits for every older snapshot to
    end, so the two would deadlock. Each ask is its own short transaction; the lock is
    the session's and outlives them (the migrations open their own)."""
    while True:
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK}
        ).scalar()
        connection.commit()
        if taken:
            return
        time.sleep(LOCK_POLL)


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _lock(connection)
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
