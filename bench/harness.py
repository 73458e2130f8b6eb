"""The bench's set-up: its own database and Redis db, Conveyor's web and workers, the
baselines and the fake provider, users with tokens, and the helpers scenarios share
(HTTP calls, wrk runs, alternating Conveyor and baseline run by run)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from redis import Redis

from bench.client import http_json
from bench.config import (
    ADMIN_URL,
    AI_WORKER_CONCURRENCY,
    CLAIM_KEY,
    CONNECTIONS,
    IO_CONCURRENCY,
    REDIS_BASE,
    USERS,
    WEB_CONNECTIONS,
    WEB_WORKERS,
    Options,
)
from bench.processes import BIN, PYTHON, ROOT, CpuMeter, Processes, children, free_port, rss_mb, wait_http


class Bench:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.db_name = f"conveyor_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.redis_db = self._claim_redis_db()
        self.tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
        (self.tmp / "logs").mkdir()
        self.processes = Processes(self.tmp / "logs")
        self.database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{self.db_name}"
        self.redis_url = f"{REDIS_BASE}/{self.redis_db}"
        self.provider_port = free_port()
        self.web_port = free_port()
        self.baseline_port = free_port()
        self.provider_url = f"http://127.0.0.1:{self.provider_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.baseline_url = f"http://127.0.0.1:{self.baseline_port}"
        self.env = self._environment()
        self.users: list[dict[str, str]] = []
        self.results: dict[str, Any] = {}

    def _claim_redis_db(self) -> int:
        for index in range(15, 0, -1):
            client = Redis.from_url(f"{REDIS_BASE}/{index}")
            if client.dbsize() == 0 and client.set(CLAIM_KEY, f"bench:{os.getpid()}", nx=True, ex=7200):
                return index
        raise SystemExit("no free Redis database (1-15) for the bench")

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PROMETHEUS_")}
        env.update(
            PATH=f"{BIN}:{env.get('PATH', '')}",
            PYTHONPATH=str(ROOT),
            # Production, as deployed: JSON logs at INFO, an access line per request, HSTS.
            CONVEYOR_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(48),
            JWT_SECRET_KEY=secrets.token_urlsafe(48),
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            AI_PROVIDER="openai",
            OPENAI_API_KEY="bench-key",
            OPENAI_BASE_URL=f"{self.provider_url}/v1",
            ACCESS_TOKEN_TTL=str(6 * 3600),  # the bench's tokens outlive the bench
            # Every bench user registers from loopback: the per-address limits would refuse them.
            REGISTER_RATE_LIMIT_PER_IP=f"{USERS}/hour",
            REGISTER_RATE_LIMIT_PER_NETWORK=f"{USERS}/hour",
            STORAGE_URL=f"file://{self.tmp / 'storage'}",
            # One machine's mail, storage and base URL, which production refuses unless named.
            ALLOW_IN_PRODUCTION="console-mail,file-storage,http-base-url",
            FLOWER_BASIC_AUTH="bench:not-used-by-the-bench",
            METRICS_PORT="0",
            LOG_LEVEL="INFO",
            BASELINE_DATABASE_URL=self.database_url.replace("postgresql+psycopg2://", "postgresql://"),
            BASELINE_REDIS_URL=self.redis_url,
        )
        for name in ("CELERY_BROKER_URL", "LOG_FORMAT", "AI_WORKER_CONCURRENCY", "WEB_CONCURRENCY"):
            env.pop(name, None)
        return env

    def env_for(self, group: str) -> dict[str, str]:
        """As the Procfile does: each process group its own prometheus multiprocess dir."""
        directory = self.tmp / "metrics" / group
        directory.mkdir(parents=True, exist_ok=True)
        return self.env | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}

    # -- set-up and tear-down ---------------------------------------------------

    def set_up(self) -> None:
        admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))
        subprocess.run(
            [str(BIN / "alembic"), "upgrade", "head"],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        from bench.baseline_app import SCHEMA

        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(SCHEMA)
        provider = self.processes.start(
            "provider",
            [PYTHON, "-m", "bench.fake_provider", "--port", str(self.provider_port)],
            self.env,
        )
        wait_http(f"{self.provider_url}/stats", provider)
        web = self.processes.start(
            "web", self.gunicorn("bench.conveyor_wsgi:app", self.web_port), self.env_for("web")
        )
        baseline = self.processes.start(
            "baseline_web",
            self.gunicorn("bench.baseline_app:app", self.baseline_port, config="bench/baseline_gunicorn.py"),
            self.env,
        )
        wait_http(f"{self.web_url}/api/v1/health", web)
        wait_http(f"{self.baseline_url}/hello", baseline)
        self.register_users()

    def tear_down(self) -> None:
        self.processes.stop_all()
        with suppress(Exception):
            admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db_name)))
        with suppress(Exception):
            Redis.from_url(self.redis_url).flushdb()
        shutil.rmtree(self.tmp / "storage", ignore_errors=True)
        shutil.rmtree(self.tmp / "metrics", ignore_errors=True)

    @staticmethod
    def gunicorn(app: str, port: int, *, config: str = "gunicorn.conf.py") -> list[str]:
        # The Procfile's web line, on loopback.
        return [
            str(BIN / "python"),
            "-m",
            "gevent.monkey",
            "--module",
            "gunicorn",
            app,
            "--config",
            config,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WEB_WORKERS),
            "--worker-class",
            "gevent",
            "--worker-connections",
            str(WEB_CONNECTIONS),
            "--graceful-timeout",
            "30",
        ]

    def celery_worker(self, name: str, *, app: str, queues: str, extra: list[str]) -> subprocess.Popen:
        hostname = f"{name}@bench"
        command = [
            str(BIN / "celery"),
            "-A",
            app,
            "worker",
            "--queues",
            queues,
            "--hostname",
            hostname,
            "--loglevel",
            "INFO",
            *extra,
        ]
        process = self.processes.start(name, command, self.env_for(name))
        self.wait_worker(hostname, app, process)
        return process

    def idle_gevent_worker(self, name: str, *, app: str) -> subprocess.Popen:
        """One gevent process with the I/O pool, consuming nothing until told (add_consumer)."""
        return self.celery_worker(
            name,
            app=app,
            queues="bench_idle",
            extra=["--pool", "gevent", "--concurrency", str(IO_CONCURRENCY)],
        )

    def wait_worker(self, hostname: str, app: str, process: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        celery_app = _celery_app(app)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"worker {hostname} exited with {process.returncode} (see its log)")
            if celery_app.control.ping(destination=[hostname], timeout=1):
                return
        raise SystemExit(f"worker {hostname} did not answer a ping within {timeout} s")

    @contextmanager
    def connect(self) -> Iterator[Any]:
        connection = psycopg2.connect(self.env["BASELINE_DATABASE_URL"])
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.close()

    def execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def register_users(self) -> None:
        for number in range(USERS):
            body = {
                "email": f"bench{number}@example.com",
                "password": "bench password 1234",
                "name": f"B{number}",
            }
            status, payload = http_json("POST", f"{self.web_url}/api/v1/auth/register", body)
            if status != 201:
                raise SystemExit(f"register answered {status}: {payload}")
            self.users.append({"id": payload["user"]["id"], "token": payload["access_token"]})
        # Verified, as a paying user is: an unverified one gets a few jobs a day (workers.plans).
        self.execute("UPDATE users SET plan = %s, email_verified_at = now()", (bench_plan(),))

    def reset_jobs(self) -> None:
        """Between runs: no jobs, no messages, so that each run starts alike."""
        self.execute("TRUNCATE jobs, bench_jobs CASCADE")
        redis = Redis.from_url(self.redis_url)
        for name in redis.scan_iter("ai*"):
            redis.delete(name)
        redis.delete("bench:baseline:queue")

    def db_sessions(self) -> int:
        """Postgres sessions opened on the bench's database so far (-1: unknown)."""
        try:
            rows = self.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        except psycopg2.OperationalError:  # e.g. max_connections reached by other users of the server
            return -1
        return int(rows[0][0]) if rows else -1

    def provider(self, latency: float) -> dict[str, Any]:
        return http_json("POST", f"{self.provider_url}/reset", {"latency": latency})[1]

    def provider_stats(self) -> dict[str, Any]:
        return http_json("GET", f"{self.provider_url}/stats")[1]

    # -- load -------------------------------------------------------------------

    def wrk(self, name: str, base_url: str, lines: list[str], seconds: float) -> dict[str, Any]:
        requests_file = self.tmp / f"{name}.tsv"
        requests_file.write_text("\n".join(lines) + "\n")
        command = [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "wrk" / "requests.lua"),
            base_url,
            "--",
            str(requests_file),
        ]
        server = "web" if base_url == self.web_url else "baseline_web"
        meter = CpuMeter({"web": self.web_workers(server)})
        sessions = self.db_sessions()
        if shutil.which("wrk"):
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
        else:  # slower per request than wrk, so the load generator takes more of the machine
            config = {"base_url": base_url, "lines": lines, "connections": CONNECTIONS, "seconds": seconds}
            result = self.load("replay", config)
        result |= meter.per(result["requests"], "request")
        after = self.db_sessions()
        result["db_sessions_opened"] = after - sessions if min(after, sessions) >= 0 else None
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        result["non_2xx_3xx"] = result["errors"]["status"]
        return result

    def load(self, scenario: str, config: dict[str, Any]) -> dict[str, Any]:
        config_file = self.tmp / f"load-{scenario}.json"
        config_file.write_text(json.dumps(config))
        done = subprocess.run(
            [PYTHON, "-m", "bench.load", scenario, "--config", str(config_file)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"bench.load {scenario} failed:\n{done.stderr[-3000:]}\n{done.stdout[-1000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    @contextmanager
    def profiling(self, name: str, pids: list[int]) -> Iterator[None]:
        """py-spy on `pids` while the block runs (with --profile): collapsed stacks, a file a pid."""
        if self.options.profile is None:
            yield
            return
        self.options.profile.mkdir(parents=True, exist_ok=True)
        spies = [
            subprocess.Popen(
                [
                    str(BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--gil",
                    "--output",
                    str(self.options.profile / f"{name}-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in pids
        ]
        try:
            yield
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            for spy in spies:
                with suppress(subprocess.TimeoutExpired):
                    spy.wait(timeout=30)

    def worker_ai(self) -> subprocess.Popen:
        """The Procfile's worker_ai (prefork), started once."""
        if "worker_ai" not in self.processes.started:
            self.celery_worker(
                "worker_ai",
                app="bench.conveyor_celery",
                queues="ai_priority,ai",
                extra=["--concurrency", str(AI_WORKER_CONCURRENCY)],
            )
        return self.processes.started["worker_ai"]

    def stop_worker_ai(self) -> None:
        """Stopped when not needed, its memory noted first (main process and pool)."""
        worker = self.processes.started.get("worker_ai")
        if worker is not None:
            self.results.setdefault("memory", {})["worker_ai process"] = [
                rss_mb(pid) for pid in [worker.pid, *children(worker.pid)]
            ]
            self.processes.stop("worker_ai")

    def web_workers(self, name: str = "web") -> list[int]:
        return children(self.processes.started[name].pid)


def admin(statement: sql.Composable) -> None:
    connection = psycopg2.connect(ADMIN_URL)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(statement)
    connection.close()


def _celery_app(app: str):
    module = __import__(app, fromlist=["app"])
    return module.app


def bench_plan() -> str:
    from bench.plan import PLAN

    return PLAN


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def alternate(bench: Bench, series: dict[str, Callable[[float], dict[str, Any]]]) -> dict[str, list[dict]]:
    """A warm-up of each, then the runs, one of each in turn."""
    for run in series.values():
        run(bench.options.warmup)
    results: dict[str, list[dict]] = {name: [] for name in series}
    for _ in range(bench.options.runs):
        for name, run in series.items():
            results[name].append(run(bench.options.duration))
    return results
