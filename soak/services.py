"""The Postgres a soak owns, so it can restart it without touching the machine's: a
cluster of its own (initdb in a temporary directory, its own port). Its Redis is
tests/fakes/services.py's `RedisServer` with an append-only file, as in production."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import psycopg2

from tests.fakes.services import free_port, wait_until

PG_BIN = Path(os.environ.get("SOAK_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: the cluster runs as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Postgres:
    """A private cluster; `restart()` is a fast shutdown (clients cut, transactions
    rolled back) and a start, as an operator's `pg_ctl restart -m fast`."""

    def __init__(self) -> None:
        # Under /tmp, not the run's directory: the `postgres` user must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-soak-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            subprocess.run(
                _as_postgres(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "--no-sync",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        self._ctl(
            "start",
            "-w",
            "-l",
            str(self.log),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off",
        )
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-w", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-w", "-m", "fast", "-l", str(self.log))

    def create_database(self, name: str) -> str:
        connection = psycopg2.connect(self.url())
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)

    def remove(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )


def wait_ready(postgres: Postgres, timeout: float = 30) -> None:
    def answers() -> bool:
        try:
            psycopg2.connect(postgres.url(), connect_timeout=1).close()
            return True
        except psycopg2.OperationalError:
            time.sleep(0.1)
            return False

    wait_until(answers, timeout, message="Postgres to accept connections")
