"""Debian's PgBouncer in transaction mode, started by the tests in front of a Postgres
port: each transaction gets whichever server connection is free, as in a deployment
that pools many web and worker processes onto few Postgres connections."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from tests.fakes.services import free_port, wait_until

# PgBouncer refuses to run as root; the tests may be root (CI, this machine).
RUN_AS = "postgres"
# What Conveyor needs behind a transaction pooler (docs/deployment.md): no prepared
# statements, and no startup options (the pooled role's statement_timeout instead).
THROUGH_PGBOUNCER = {
    "DB_PREPARED_STATEMENTS": "false",
    "DB_STATEMENT_TIMEOUT": "0",
    "DB_WORKER_STATEMENT_TIMEOUT": "0",
}


class PgBouncer:
    """`url(database)` reaches `database` through it; `stats()` reads its admin console."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", pool_size: int = 10) -> None:
        self.target = (target_host, target_port)
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgBouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():  # never skipped: `make test` installs it (Makefile)
            pytest.fail("the PgBouncer tests need Debian's pgbouncer: apt-get install -y pgbouncer")
        self.dir.chmod(0o755)
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        # Waits short enough that a database away is an error (the API's 503) in seconds,
        # and a return is seen at once (server_login_retry), as docs/deployment.md says.
        (self.dir / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={self.target[0]} port={self.target[1]}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = 500
query_wait_timeout = 3
server_login_retry = 1
server_connect_timeout = 3
"""
        )
        for name in ("userlist.txt", "pgbouncer.ini"):
            (self.dir / name).chmod(0o644)
        user = RUN_AS if os.geteuid() == 0 else None
        self.log = (self.dir / "pgbouncer.log").open("wb")
        self.process = subprocess.Popen(
            [binary, str(self.dir / "pgbouncer.ini")], user=user, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_until(self._answers, 10, message="pgbouncer to listen")
        return self

    def stats(self, database: str) -> dict[str, int]:
        """SHOW STATS for one database: transactions and queries it pooled, since start."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer")
        connection.autocommit = True  # the admin console takes no transactions
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW STATS")
                names = [column.name for column in cursor.description]
                for row in cursor.fetchall():
                    if row[0] == database:
                        return dict(zip(names, row, strict=True))
            return {}
        finally:
            connection.close()

    def log_text(self) -> str:
        return (self.dir / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail("pgbouncer exited:\n" + self.log_text()[-2000:])
        try:
            psycopg2.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer", connect_timeout=2
            ).close()
            return True
        except psycopg2.OperationalError:
            return False
