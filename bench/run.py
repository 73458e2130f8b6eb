"""`make bench`: Conveyor against bare baselines, measured in the same run (issue 7).

Starts everything on loopback (a database and a Redis db of its own, dropped and
emptied at the end, like tests/conftest.py does), drives it from other processes
(wrk for the HTTP scenarios, bench/load.py for the ones that follow jobs to their
end), prints a table and writes it as JSON to bench/results/.

    python -m bench.run                  # the full run (about 15 minutes)
    python -m bench.run --quick          # one short run of each, to check the set-up
    python -m bench.run --only submit,poll --profile var/bench-profiles
    python -m bench.run --max-load 1.5   # first wait (up to 20 min) for a quiet machine
    python -m bench.run --serve          # set up, print the URLs and a token, wait (to poke at)

Conveyor and the baselines run alternately, run by run, so that whatever else the
machine is doing falls on both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@localhost:5432/postgres")
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379")
CLAIM_KEY = "conveyor:test-run"  # the key tests/conftest.py claims a Redis db with: runs skip each other

# The Procfile's defaults (web, worker_ai): the same flags for Conveyor and the baselines.
WEB_WORKERS = 2
WEB_CONNECTIONS = 1000
AI_WORKER_CONCURRENCY = 4
CONNECTIONS = 16  # wrk's, for submit and poll (issue 7)
USERS = 50
IO_JOBS = 1000
IO_LATENCY = 1.0
IO_CONCURRENCY = 1000  # greenlets in the one gevent AI worker process
AI_QUEUE = "ai_priority"  # where the business plan's AI jobs go (workers.plans.queue_for)


@dataclass
class Options:
    runs: int = 5
    duration: float = 10.0
    warmup: float = 3.0
    pipeline_runs: int = 3
    pipeline_jobs: int = 1000
    pipeline_tasks: int = 5000
    io_runs: int = 3
    overhead_jobs: int = 200
    only: set[str] = field(default_factory=set)
    profile: Path | None = None
    max_load: float = 0.0
    serve: bool = False

    def wants(self, scenario: str) -> bool:
        return not self.only or scenario in self.only


# ---------------------------------------------------------------- processes


class Processes:
    """The processes the bench starts, each in a session of its own, stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self.started.pop(name, None)
        if process is None or process.poll() is not None:
            return
        # The process leads its own session: its group is its workers (gunicorn's, Celery's pool).
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.started):
            self.stop(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with {process.returncode} (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone (a pool process replaced): it no longer counts
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def server_pids(name: str) -> list[int]:
    """The processes of a server the bench shares with the machine (`postgres`,
    `redis-server`), by their command name."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def children_cpu() -> float:
    """User + system CPU time of this process's finished children (wrk, bench.load)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """The CPU each group of processes spends over a block, per operation: the group
    under test, Postgres's and Redis's processes (what is on the path, and a little of
    other users' work: these servers are the machine's), and the load generator (the
    one child the block runs and waits for). Together, where the machine's cores went.
    A Postgres backend that starts and ends within the block is missed (the runs
    report the sessions opened: 1-4 a run)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups | {"postgres": server_pids("postgres"), "redis": server_pids("redis-server")}
        self.before = {name: group_cpu(pids) for name, pids in self.groups.items()}
        self.load_before = children_cpu()

    def per(self, count: int, unit: str) -> dict[str, float]:
        spent = {name: group_cpu(pids) - self.before[name] for name, pids in self.groups.items()}
        spent["load"] = children_cpu() - self.load_before
        return {f"{name}_cpu_ms_per_{unit}": cpu * 1000 / max(1, count) for name, cpu in spent.items()}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# ---------------------------------------------------------------- the environment


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
            STORAGE_URL=f"file://{self.tmp / 'storage'}",
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
        self.execute("UPDATE users SET plan = %s", (_bench_plan(),))

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


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    status, _, payload = http_call(method, url, body, headers)
    return status, payload


def http_call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """A request to one of the bench's own servers (loopback); the status, headers and JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


def _celery_app(app: str):
    module = __import__(app, fromlist=["app"])
    return module.app


def _bench_plan() -> str:
    from bench.plan import PLAN

    return PLAN


# ---------------------------------------------------------------- scenarios


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def job_body(tag: str) -> str:
    return json.dumps({"tool": "text", "input": {"prompt": f"bench-{tag} Write a haiku about queues."}})


def alternate(bench: Bench, series: dict[str, Callable[[float], dict[str, Any]]]) -> dict[str, list[dict]]:
    """A warm-up of each, then the runs, one of each in turn."""
    for run in series.values():
        run(bench.options.warmup)
    results: dict[str, list[dict]] = {name: [] for name in series}
    for _ in range(bench.options.runs):
        for name, run in series.items():
            results[name].append(run(bench.options.duration))
    return results


def scenario_submit(bench: Bench) -> None:
    auth = [f"Authorization: Bearer {user['token']}" for user in bench.users]
    conveyor_lines = [
        "\t".join(
            ["POST", "/api/v1/jobs", job_body(f"s{i}"), "Content-Type: application/json", auth[i % len(auth)]]
        )
        for i in range(len(auth) * 4)
    ]
    baseline_lines = [line.replace("/api/v1/jobs", "/submit", 1) for line in conveyor_lines]

    def conveyor(seconds: float) -> dict[str, Any]:
        bench.reset_jobs()
        with bench.profiling("submit-web", bench.web_workers()):
            return bench.wrk("submit-conveyor", bench.web_url, conveyor_lines, seconds)

    def baseline(seconds: float) -> dict[str, Any]:
        bench.reset_jobs()
        return bench.wrk("submit-baseline", bench.baseline_url, baseline_lines, seconds)

    runs = alternate(bench, {"conveyor": conveyor, "baseline": baseline})
    bench.results["submit"] = runs
    bench.reset_jobs()


def scenario_poll(bench: Bench) -> None:
    # One finished job per user, as a client polls it once the result is in.
    bench.reset_jobs()
    bench.worker_ai()
    jobs = []
    for index, user in enumerate(bench.users):
        status, job = http_json(
            "POST",
            f"{bench.web_url}/api/v1/jobs",
            json.loads(job_body(f"p{index}")),
            {"Authorization": f"Bearer {user['token']}"},
        )
        if status != 202:
            raise SystemExit(f"submit answered {status}: {job}")
        jobs.append((user, job["id"]))
    _wait_succeeded(bench, len(jobs))
    bench.stop_worker_ai()
    conveyor_200, conveyor_304, baseline_lines = [], [], []
    for user, job_id in jobs:
        bearer = f"Bearer {user['token']}"
        auth = f"Authorization: {bearer}"
        status, headers, job = http_call(
            "GET", f"{bench.web_url}/api/v1/jobs/{job_id}", headers={"Authorization": bearer}
        )
        if status != 200:
            raise SystemExit(f"GET /jobs/<id> answered {status}: {job}")
        etag = headers["ETag"]
        conveyor_200.append("\t".join(["GET", f"/api/v1/jobs/{job_id}", "", auth]))
        conveyor_304.append("\t".join(["GET", f"/api/v1/jobs/{job_id}", "", auth, f"If-None-Match: {etag}"]))
        bench.execute(
            "INSERT INTO bench_jobs (id, owner, tool, status, input, output) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                job_id,
                user["id"],
                job["tool"],
                job["status"],
                json.dumps(job["input"]),
                json.dumps(job["output"]),
            ),
        )
        baseline_lines.append("\t".join(["GET", f"/jobs/{job_id}", "", auth]))
    hello_lines = ["\t".join(["GET", "/hello", "", "Authorization: Bearer x"])]

    def runner(name: str, url: str, lines: list[str], profile: bool = False) -> Callable[[float], dict]:
        def run(seconds: float) -> dict[str, Any]:
            if profile:
                with bench.profiling(name, bench.web_workers()):
                    return bench.wrk(name, url, lines, seconds)
            return bench.wrk(name, url, lines, seconds)

        return run

    runs = alternate(
        bench,
        {
            "conveyor": runner("poll-conveyor", bench.web_url, conveyor_200, profile=True),
            "baseline": runner("poll-baseline", bench.baseline_url, baseline_lines),
            "conveyor_304": runner("poll304-conveyor", bench.web_url, conveyor_304, profile=True),
            "hello": runner("poll-hello", bench.baseline_url, hello_lines),
        },
    )
    bench.results["poll"] = runs


def _wait_succeeded(bench: Bench, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = bench.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'")[0][0]
        if done >= count:
            return
        time.sleep(0.2)
    raise SystemExit(f"only {done} of {count} set-up jobs succeeded within {timeout} s")


def scenario_overhead_and_pipeline(bench: Bench) -> None:
    options = bench.options
    bench.provider(latency=0.0)
    bench.reset_jobs()
    worker = bench.worker_ai()
    common = {
        "base_url": bench.web_url,
        "tokens": [user["token"] for user in bench.users],
        "database_url": bench.env["BASELINE_DATABASE_URL"],
        "provider_url": bench.provider_url,
    }
    if options.wants("overhead"):
        bench.results["hand_offs_us"] = hand_offs(bench)
        # The bare chain's worker runs for this scenario only: the submit scenario's
        # baseline leaves its messages in the list.
        bench.processes.start("bare_worker", [PYTHON, "-m", "bench.bare_worker"], bench.env)
        config = common | {"baseline_url": bench.baseline_url, "jobs": options.overhead_jobs}
        bench.results["overhead"] = bench.load("overhead", config | {"warmup": 10, "pause": 0.02})
        bench.processes.stop("bare_worker")
    if options.wants("pipeline"):
        baseline = bench.celery_worker(
            "baseline_worker",
            app="bench.baseline_celery",
            queues="bench_noop",
            extra=["--concurrency", str(AI_WORKER_CONCURRENCY)],
        )
        conveyor_config = common | {"jobs": options.pipeline_jobs, "concurrency": CONNECTIONS, "timeout": 600}
        celery_config = {"tasks": options.pipeline_tasks, "redis_url": bench.redis_url, "timeout": 600}
        bench.reset_jobs()
        # Warm-up: connections, imports, caches.
        bench.load("pipeline-conveyor", conveyor_config | {"jobs": min(200, options.pipeline_jobs)})
        bench.load("pipeline-celery", celery_config | {"tasks": min(500, options.pipeline_tasks)})
        runs: dict[str, list] = {"conveyor": [], "baseline": []}
        for _ in range(options.pipeline_runs):
            bench.reset_jobs()
            pool = children(worker.pid)
            meter = CpuMeter(
                {
                    "web": bench.web_workers(),
                    "worker": [worker.pid, *pool],
                    "worker_main": [worker.pid],
                    "provider": [bench.processes.started["provider"].pid],
                }
            )
            with bench.profiling("pipeline-worker", [worker.pid, *pool]):
                result = bench.load("pipeline-conveyor", conveyor_config)
                result |= meter.per(result["jobs"], "job")  # before py-spy ends: not its CPU
            runs["conveyor"].append(result)
            meter = CpuMeter({"worker": [baseline.pid, *children(baseline.pid)]})
            result = bench.load("pipeline-celery", celery_config)
            result |= meter.per(result["tasks"], "task")
            runs["baseline"].append(result)
        bench.results["pipeline"] = runs
        bench.processes.stop("baseline_worker")
    bench.stop_worker_ai()


def hand_offs(bench: Bench, *, idle: float = 0.02) -> dict[str, dict[str, float]]:
    """What one round trip to Redis (PING) and to Postgres (SELECT 1) takes from this
    process, back to back and after `idle` seconds of nothing: median µs. One job at a
    time, the overhead's path is a chain of such hand-offs to processes that had gone
    idle, and on a virtual machine a wake-up can cost more than the work."""
    redis = Redis.from_url(bench.redis_url)
    database = psycopg2.connect(bench.env["BASELINE_DATABASE_URL"])
    database.autocommit = True
    cursor = database.cursor()
    calls = {"redis_ping": redis.ping, "postgres_select_1": lambda: cursor.execute("SELECT 1")}
    measured = {}
    try:
        for name, call in calls.items():
            for _ in range(20):  # connected, warm
                call()
            measured[name] = {
                "back_to_back": _median_us(call, 200, 0.0),
                f"after_{idle * 1000:g}ms_idle": _median_us(call, 100, idle),
            }
    finally:
        database.close()
        redis.close()
    return measured


def _median_us(call: Callable[[], object], count: int, pause: float) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
        if pause:
            time.sleep(pause)
    return round(statistics.median(times), 1)


def scenario_io(bench: Bench) -> None:
    options = bench.options
    hostname = "worker_io@bench"
    worker = bench.idle_gevent_worker("worker_io", app="bench.conveyor_celery")
    idle_rss = rss_mb(worker.pid)
    config = {
        "base_url": bench.web_url,
        "tokens": [user["token"] for user in bench.users],
        "database_url": bench.env["BASELINE_DATABASE_URL"],
        "concurrency": CONNECTIONS,
        "jobs": IO_JOBS,
        "queue": AI_QUEUE,
        "worker": hostname,
        "timeout": 300,
    }
    runs = []
    for _ in range(options.io_runs):
        bench.reset_jobs()
        bench.provider(latency=IO_LATENCY)
        cpu = cpu_seconds(worker.pid)
        with bench.profiling("io-worker", [worker.pid]):
            result = bench.load("io", config)
        result["worker_cpu_s"] = cpu_seconds(worker.pid) - cpu
        stats = bench.provider_stats()
        result |= {
            "peak_in_flight": stats["peak_in_flight"],
            "provider_requests": stats["requests"],
            "provider_connections": stats["connections"],  # ~requests if the worker pools none
        }
        runs.append(result)
    bench.results["io"] = runs
    bench.results.setdefault("memory", {})["gevent AI worker"] = [rss_mb(worker.pid)]
    bench.results["io_worker_rss_mb"] = {"idle, before the runs": idle_rss, "after": rss_mb(worker.pid)}
    bench.processes.stop("worker_io")
    bench.provider(latency=0.0)
    # The same pool with raw Celery tasks that only wait: what Celery itself reaches.
    baseline = bench.idle_gevent_worker("baseline_io", app="bench.baseline_celery")
    celery_config = {
        "redis_url": bench.redis_url,
        "tasks": IO_JOBS,
        "latency": IO_LATENCY,
        "worker": "baseline_io@bench",
        "timeout": 300,
    }
    celery_runs = []
    for _ in range(options.io_runs):
        cpu = cpu_seconds(baseline.pid)
        result = bench.load("io-celery", celery_config)
        result["worker_cpu_s"] = cpu_seconds(baseline.pid) - cpu
        celery_runs.append(result)
    bench.results["io_celery"] = celery_runs
    bench.processes.stop("baseline_io")


# ---------------------------------------------------------------- the table


@dataclass
class Row:
    scenario: str
    measure: str
    conveyor: dict[str, float] | None
    baseline: dict[str, float] | None
    ratio: float | None
    target: str
    passed: bool | None
    unit: str = ""
    note: str = ""


def _fmt(value: dict[str, float] | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = 0 if value["median"] >= 100 else 1
    spread = f" ({value['min']:.{digits}f}-{value['max']:.{digits}f})" if len(value["runs"]) > 1 else ""
    return f"{value['median']:.{digits}f}{unit}{spread}"


def build_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []

    def rps(runs: list[dict]) -> dict[str, float]:
        return summary([run["rps"] for run in runs])

    def latency(runs: list[dict], p: str) -> dict[str, float]:
        return summary([run["latency_us"][p] / 1000 for run in runs])

    if "submit" in results:
        c, b = rps(results["submit"]["conveyor"]), rps(results["submit"]["baseline"])
        ratio = c["median"] / b["median"]
        rows.append(Row("submit", "POST /jobs req/s", c, b, ratio, "≥ 0.5 x baseline", ratio >= 0.5, " /s"))
        for p in ("p50", "p99"):
            cl, bl = latency(results["submit"]["conveyor"], p), latency(results["submit"]["baseline"], p)
            target = "≤ 25 ms" if p == "p99" else ""
            passed = cl["median"] <= 25 if p == "p99" else None
            rows.append(
                Row("submit", f"latency {p}", cl, bl, cl["median"] / bl["median"], target, passed, " ms")
            )
    if "poll" in results:
        poll = results["poll"]
        c, b = rps(poll["conveyor"]), rps(poll["baseline"])
        ratio = c["median"] / b["median"]
        rows.append(Row("poll", "GET /jobs/<id> req/s", c, b, ratio, "≥ 0.6 x baseline", ratio >= 0.6, " /s"))
        c, b = rps(poll["conveyor_304"]), rps(poll["hello"])
        ratio = c["median"] / b["median"]
        rows.append(Row("poll", "304 req/s (vs hello)", c, b, ratio, "≥ 0.8 x hello", ratio >= 0.8, " /s"))
        for name in ("conveyor", "conveyor_304"):
            cl = latency(poll[name], "p99")
            base = "baseline" if name == "conveyor" else "hello"
            bl = latency(poll[base], "p99")
            label = "200" if name == "conveyor" else "304"
            rows.append(
                Row("poll", f"{label} latency p99", cl, bl, cl["median"] / bl["median"], "", None, " ms")
            )
    if "pipeline" in results:
        c = summary([run["jobs_per_s"] for run in results["pipeline"]["conveyor"]])
        b = summary([run["tasks_per_s"] for run in results["pipeline"]["baseline"]])
        ratio = c["median"] / b["median"]
        rows.append(
            Row(
                "pipeline",
                "jobs/s submit → succeeded",
                c,
                b,
                ratio,
                "≥ 0.5 x raw Celery",
                ratio >= 0.5,
                " /s",
            )
        )
    if "io" in results:
        runs = results["io"]
        ideal = IO_JOBS * IO_LATENCY / IO_CONCURRENCY
        peak = summary([float(run["peak_in_flight"]) for run in runs])
        elapsed = summary([run["elapsed_s"] for run in runs])
        # The baseline column: raw Celery tasks that only wait, in the same pool (bench.baseline_celery).
        celery_runs = results.get("io_celery") or []
        celery_peak = summary([float(run["peak_in_flight"]) for run in celery_runs]) if celery_runs else None
        celery_elapsed = summary([run["elapsed_s"] for run in celery_runs]) if celery_runs else None
        rows.append(
            Row(
                "I/O",
                "calls in flight, peak (vs raw Celery waits)",
                peak,
                celery_peak,
                peak["median"] / celery_peak["median"] if celery_peak else None,
                "≥ 500",
                peak["median"] >= 500,
            )
        )
        ideal_value = {"median": ideal, "min": ideal, "max": ideal, "runs": [ideal]}
        ratio = elapsed["median"] / ideal
        rows.append(
            Row(
                "I/O",
                f"{IO_JOBS} jobs x {IO_LATENCY:g} s, total time (vs ideal)",
                elapsed,
                ideal_value,
                ratio,
                "≤ 1.3 x ideal",
                ratio <= 1.3,
                " s",
            )
        )
        if celery_elapsed:
            rows.append(
                Row(
                    "I/O",
                    "total time (vs raw Celery waits)",
                    elapsed,
                    celery_elapsed,
                    elapsed["median"] / celery_elapsed["median"],
                    "",
                    None,
                    " s",
                )
            )
    if "overhead" in results:
        o = results["overhead"]
        bare = o.get("bare_chain")  # the same moments through bench/baseline_app.py's bare chain
        for p, limit in (("p50", 15), ("p99", 50)):
            value = summary([o[f"{p}_ms"]])
            baseline = summary([bare[f"{p}_ms"]]) if bare else None
            rows.append(
                Row(
                    "overhead",
                    f"submit → visible - provider, {p} (vs bare chain)",
                    value,
                    baseline,
                    o[f"{p}_ms"] / baseline["median"] if baseline else None,
                    f"≤ {limit} ms",
                    o[f"{p}_ms"] <= limit,
                    " ms",
                )
            )
    for group, values in results.get("memory", {}).items():
        values = [value for value in values or [] if value is not None]
        if not values:
            continue
        top = max(values)
        value = {"median": top, "min": min(values), "max": top, "runs": values}
        rows.append(
            Row(
                "memory",
                f"RSS {group} (largest of {len(values)})",
                value,
                None,
                None,
                "≤ 150 MB",
                top <= 150,
                " MB",
            )
        )
    return rows


def render(rows: list[Row]) -> str:
    header = ["scenario", "measure", "Conveyor", "baseline", "ratio", "target", "result"]
    body = [
        [
            row.scenario,
            row.measure,
            _fmt(row.conveyor, row.unit),
            _fmt(row.baseline, row.unit),
            f"{row.ratio:.2f}" if row.ratio is not None else "—",
            row.target or "—",
            {True: "pass", False: "MISS", None: ""}[row.passed],
        ]
        for row in rows
    ]
    return "\n".join(_grid(header, body))


def _grid(header: list[str], body: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return lines


CPU_GROUPS = ("web", "worker", "provider", "postgres", "redis", "load")  # worker_main is in worker


def render_cpu(results: dict[str, Any]) -> str:
    """Where the machine's cores went, per request, job or task: the median of each
    group over the runs, and their sum (the load generator's included: it shares the cores)."""
    header = ["series", *CPU_GROUPS, "total"]
    body = []
    for scenario in ("submit", "poll", "pipeline"):
        for series, runs in results.get(scenario, {}).items():
            if not runs:
                continue
            fields = {
                key.split("_cpu_ms_per_")[0]: statistics.median(run[key] for run in runs)
                for key in runs[0]
                if "_cpu_ms_per_" in key
            }
            cells = [f"{fields[name]:.2f}" if name in fields else "—" for name in CPU_GROUPS]
            total = sum(fields.get(name, 0.0) for name in CPU_GROUPS)
            body.append([f"{scenario} {series}", *cells, f"{total:.2f}"])
    if not body:
        return ""
    return "\n".join(
        ["CPU ms per operation, median of the runs (load: wrk or bench/load.py)", *_grid(header, body)]
    )


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory) / 1024**2, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def serve(bench: Bench) -> None:
    print(f"web {bench.web_url}/api/v1, baseline {bench.baseline_url}, provider {bench.provider_url}")
    print(f"database {bench.env['BASELINE_DATABASE_URL']}, redis {bench.redis_url}")
    print(f"TOKEN={bench.users[0]['token']}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # tear down on either
    with suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def wait_for_quiet(threshold: float, limit: float = 20 * 60) -> None:
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        print(
            f"load average {load_average()}: waiting for the 1-minute figure to drop below {threshold}",
            flush=True,
        )
        time.sleep(60)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk)", flush=True)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, check=False, stdout=subprocess.DEVNULL).returncode != 0:
            # No package lists yet (a fresh machine): fetch them and try once more.
            subprocess.run(["apt-get", "update", "-q"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(install, check=False, stdout=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        print(
            "warning: wrk not found (apt-get install wrk); the HTTP scenarios use bench/load.py's "
            "Python client instead, which needs more CPU per request: figures will be lower",
            flush=True,
        )


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Benchmark Conveyor against bare baselines (issue 7).")
    parser.add_argument("--quick", action="store_true", help="one short run of each: checks the set-up")
    parser.add_argument("--runs", type=int, help="measured runs of each HTTP scenario (default 5)")
    parser.add_argument("--duration", type=float, help="seconds a measured HTTP run lasts (default 10)")
    parser.add_argument("--only", default="", help="comma-separated: submit, poll, pipeline, overhead, io")
    parser.add_argument(
        "--serve", action="store_true", help="set up, print the URLs and a token, wait for Ctrl-C"
    )
    parser.add_argument("--profile", type=Path, help="record py-spy profiles (collapsed stacks) here")
    parser.add_argument(
        "--max-load", type=float, default=0.0, help="first wait for a 1-minute load below this"
    )
    args = parser.parse_args(argv)
    options = Options()
    if args.quick:
        options = Options(
            runs=1,
            duration=3,
            warmup=1,
            pipeline_runs=1,
            pipeline_jobs=300,
            pipeline_tasks=1000,
            io_runs=1,
            overhead_jobs=40,
        )
    if args.runs:
        options.runs = args.runs
    if args.duration:
        options.duration = args.duration
    options.only = {name.strip() for name in args.only.split(",") if name.strip()}
    options.profile = args.profile
    options.max_load = args.max_load
    options.serve = args.serve
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    ensure_wrk()
    from scripts.preflight import problems

    found = problems(ADMIN_URL, f"{REDIS_BASE}/0")
    if found:
        print("\n".join(f"error: {problem}" for problem in found), file=sys.stderr)
        return 3
    if options.max_load:
        wait_for_quiet(options.max_load)
    bench = Bench(options)
    os.environ.update(bench.env)  # for the Celery apps this process pings
    started = dt.datetime.now(dt.UTC)
    load_before = load_average()
    print(f"bench: logs in {bench.tmp / 'logs'}; load average {load_before}", flush=True)
    try:
        bench.set_up()
        if options.serve:
            serve(bench)
            return 0
        steps = [
            ("overhead", scenario_overhead_and_pipeline),
            ("poll", scenario_poll),
            ("submit", scenario_submit),
            ("io", scenario_io),
        ]
        for name, step in steps:
            if name == "overhead" and not (options.wants("overhead") or options.wants("pipeline")):
                continue
            if name != "overhead" and not options.wants(name):
                continue
            print(f"bench: {step.__name__.removeprefix('scenario_')} …", flush=True)
            try:
                step(bench)
            except Exception as error:  # the other scenarios still run, and the table says what failed
                traceback.print_exc()
                bench.results.setdefault("failed", {})[name] = repr(error)
                for process in ("worker_ai", "baseline_worker", "worker_io"):
                    bench.processes.stop(process)
        web = [rss_mb(pid) for pid in bench.web_workers()]
        bench.results.setdefault("memory", {})["web worker"] = web
        bench.results["memory"]["baseline web worker"] = [
            rss_mb(pid) for pid in bench.web_workers("baseline_web")
        ]
    finally:
        load_after = load_average()
        bench.tear_down()
    rows = build_rows(bench.results)
    table = render(rows)
    print()
    print(table)
    cpu = render_cpu(bench.results)
    if cpu:
        print(f"\n{cpu}")
    hand = bench.results.get("hand_offs_us")
    if hand:
        print(
            "\none round trip, back to back / after 20 ms idle: "
            + ", ".join(
                f"{name} {' / '.join(f'{us:g}' for us in spans.values())} µs" for name, spans in hand.items()
            )
        )
    for name, error in bench.results.get("failed", {}).items():
        print(f"FAILED: {name}: {error}")
    print(f"\nload average before {load_before}, after {load_after}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps(
            {
                "date": started.isoformat(),
                "machine": machine(),
                "load_average": {"before": load_before, "after": load_after},
                "options": {k: str(v) for k, v in vars(options).items()},
                "settings": {
                    "web": f"gunicorn, {WEB_WORKERS} gevent workers x {WEB_CONNECTIONS} connections "
                    "(Conveyor and baseline)",
                    "worker_ai": f"prefork x {AI_WORKER_CONCURRENCY} (Conveyor and raw Celery)",
                    "io_worker": f"one process, gevent pool x {IO_CONCURRENCY}",
                    "load": f"wrk -t1 -c{CONNECTIONS}; bench/load.py for pipeline, io, overhead",
                    "users": f"{USERS} users on the {_bench_plan()} plan with limits lifted (bench/plan.py)",
                    "provider": "bench/fake_provider.py over the openai SDK (AI_PROVIDER=openai)",
                },
                "table": [vars(row) for row in rows],
                "raw": bench.results,
            },
            indent=2,
            default=str,
        )
    )
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
