"""Stop at once, with the command that fixes it, when Postgres or Redis is not there.

`make run` and `make test` call this first:  python -m scripts.preflight [--create-db]
"""

from __future__ import annotations

import argparse
import sys

import psycopg2
from psycopg2 import sql
from redis import Redis
from sqlalchemy.engine import make_url

POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def problems(database_url: str, redis_url: str, *, create_db: bool = False) -> list[str]:
    found = []
    url = make_url(database_url)
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    try:
        if create_db:
            _ensure_database(url)
        psycopg2.connect(_dsn(url), connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        reason = str(error).strip().splitlines()[0]
        if "does not exist" in reason:
            found.append(
                f"PostgreSQL at {where} has no database {url.database!r}.\n"
                f"    Create it with: createdb -h {url.host or 'localhost'} -U {url.username or 'postgres'} "
                f"{url.database}   (make run creates it for you)"
            )
        else:
            found.append(
                f"PostgreSQL is not reachable at {where}: {reason}\n    Start it with: {POSTGRES_START}"
            )
    try:
        Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as error:
        found.append(f"Redis is not reachable at {redis_url}: {error}\n    Start it with: {REDIS_START}")
    return found


def _dsn(url, database: str | None = None) -> str:
    parts = {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "dbname": database or url.database,
    }
    if url.password:
        parts["password"] = url.password
    return " ".join(f"{key}={value}" for key, value in parts.items())


def _ensure_database(url) -> None:
    """Create the database `make run` uses, on a fresh machine with trust auth."""
    connection = psycopg2.connect(_dsn(url, "postgres"), connect_timeout=3)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
            print(f"created database {url.database!r}")
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--create-db", action="store_true", help="create the database if it is missing")
    args = parser.parse_args()
    from settings import ConfigError, get_settings

    try:
        settings = get_settings()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    found = problems(settings.database_url, settings.redis_url, create_db=args.create_db)
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
