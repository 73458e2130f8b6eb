"""`make soak`: the whole stack under load and chaos, then an audit.

    python -m soak.run --minutes 10 --seed 1 --out var/soak/result.json

Starts its own Postgres cluster and Redis (so it can restart them), the fakes (a busy
OpenAI-compatible provider, a flaky webhook receiver, an SMTP server), Conveyor's
Procfile processes, the load (another process) and the chaos driver; after the load, a
drain until every job and outbox row has settled; then the audit, a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2
import requests

from bench.processes import ROOT
from soak import report
from soak.audit import audit, open_work
from soak.chaos import Chaos
from soak.services import Postgres
from soak.stack import Stack
from tests.fakes.openai_script import Mix
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.services import RedisServer, free_port
from tests.fakes.smtp_server import SmtpServer
from tests.fakes.webhook_receiver import WebhookReceiver

PLANS = ("free",) * 6 + ("pro",) * 3 + ("business",)


def environment(
    workdir: Path, database_url: str, redis_url: str, provider: str, smtp: str, port: int
) -> dict:
    """The stack's settings: production's, but recovery timings shortened (as the crash
    tests' are) so a drain of minutes, not hours, sees every job through."""
    return {
        # Nothing else from this environment: a test run's settings must not leak in.
        **{key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ},
        "CONVEYOR_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": "",
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "soak-key",
        "OPENAI_BASE_URL": provider,
        "OPENAI_TIMEOUT": "5",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "ACCESS_TOKEN_TTL": "86400",
        "MAIL_URL": smtp,
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STORAGE_URL": f"file://{workdir / 'storage'}",
        "PASSWORD_HASH_PROFILE": "cheapest",
        "REGISTER_RATE_LIMIT_PER_IP": "100000/hour",
        "REGISTER_RATE_LIMIT_PER_NETWORK": "100000/hour",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "AI_WORKER_CONCURRENCY": "6",
        "WORKER_CONCURRENCY": "2",
        "BEAT_SCHEDULE_FILE": str(workdir / "beat-schedule"),
        "METRICS_DIR": str(workdir / "metrics"),
        "WORKER_AI_METRICS_PORT": "0",
        "WORKER_METRICS_PORT": "0",
        "WORKER_MAINTENANCE_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "JOB_LEASE_SECONDS": "10",
        "JOB_SOFT_TIME_LIMIT": "15",
        "JOB_HARD_TIME_LIMIT": "18",
        "BROKER_VISIBILITY_TIMEOUT": "20",
        "BROKER_RESTORE_INTERVAL": "2",
        "MAINTENANCE_INTERVAL": "2",
        "REQUEUE_STALE_AFTER": "20",
        "WORKER_HEARTBEAT_INTERVAL": "1",
    }


def register_users(base: str, database_url: str, count: int, seed: int) -> list[dict[str, Any]]:
    """Accounts made through the API (each sends its verification email), then verified
    and put on a plan in the database, as a click on the link and Stripe would."""

    def register(index: int) -> dict[str, Any]:
        email = f"soak-{seed}-{index}@example.com"
        body = {"email": email, "password": "a long soak password", "name": f"Soak {index}"}
        response = requests.post(f"{base}/auth/register", json=body, timeout=60)
        response.raise_for_status()
        session = response.json()
        return {
            "id": session["user"]["id"],
            "token": session["access_token"],
            "plan": PLANS[index % len(PLANS)],
        }

    with ThreadPoolExecutor(max_workers=8) as pool:
        users = list(pool.map(register, range(count + 1)))
    users[-1]["plan"] = "business"  # the chaos driver's probe user
    connection = psycopg2.connect(database_url)
    with connection, connection.cursor() as cursor:
        for user in users:
            cursor.execute(
                "UPDATE users SET plan = %s, email_verified_at = now() WHERE id = %s",
                (user["plan"], user["id"]),
            )
    connection.close()
    return users


def run(
    minutes: float,
    seed: int,
    out: Path,
    users: int = 300,
    rate: float = 2.0,
    drain_limit: float = 240,
    interval: tuple[float, float] = (1.0, 4.0),
) -> dict[str, Any]:
    """Seconds between faults are drawn from `interval`."""
    began = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-soak-"))
    (workdir / "logs").mkdir()
    print(f"soak: {minutes} min, seed {seed}, logs in {workdir / 'logs'}", flush=True)
    postgres, redis = Postgres(), RedisServer(workdir / "redis", append_only=True)
    provider = FakeOpenAI(mix=Mix(seed=seed))
    receiver, smtp = WebhookReceiver(fail_every=10), SmtpServer()
    stack = load = chaos = None
    passed = False
    try:
        postgres.start()
        redis.start()
        provider.start()
        receiver.start()
        smtp.start()
        database_url = postgres.create_database("conveyor_soak")
        port = free_port()
        env = environment(workdir, database_url, redis.url, provider.base_url, smtp.url, port)
        stack = Stack(workdir / "logs", env, port)
        stack.release()
        stack.start_all()
        accounts = register_users(stack.base, database_url, users, seed)
        probe = accounts.pop()

        records_path = workdir / "load.jsonl"
        plan = {
            "base": stack.base,
            "users": accounts,
            "rate": rate,
            "seconds": minutes * 60,
            "seed": seed,
            "webhook_url": receiver.url(),
            "out": str(records_path),
        }
        (workdir / "load.json").write_text(json.dumps(plan))
        started = time.time()
        load = subprocess.Popen(
            [sys.executable, "-m", "soak.load", str(workdir / "load.json")],
            cwd=ROOT,
            stdout=(workdir / "logs" / "load.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        chaos = Chaos(stack, postgres, redis, provider, probe["token"], seed, interval)
        chaos.start()
        time.sleep(max(0.0, started + minutes * 60 - time.time()))
        chaos.stop()
        load_over = time.time()
        print(f"soak: load over after {time.time() - started:.0f} s; draining", flush=True)

        drain(load, database_url, redis, drain_limit)
        chaos.settle()
        records = [json.loads(line) for line in records_path.read_text().splitlines() if line]
        windows = chaos.windows()
        faults = chaos.as_json()
        result_audit = audit(database_url, redis.client(), receiver, smtp, records, windows, faults)
        result = report.summary(
            result_audit,
            faults,
            chaos.errors,
            {"minutes": minutes, "seed": seed, "users": users, "rate": rate},
        )
        result["seconds"] = {
            "setup": round(started - began),
            "load": round(load_over - started),
            "drain": round(time.time() - load_over),
        }
        result["submit_fault_windows"] = windows
        result["exited_and_restarted"] = stack.exits
        result["load_errors"] = [r for r in records if r["kind"] == "load_error"][:5]
        result["passed"] = result["passed"] and not result["load_errors"]
        report.write(result, out)
        print(report.table(result), flush=True)
        passed = result["passed"]
        return result
    finally:
        if chaos is not None:
            chaos.stop()
        if load is not None and load.poll() is None:
            load.kill()
        if stack is not None:
            stack.stop_all()
        smtp.stop()
        receiver.stop()
        provider.stop()
        redis.stop()
        postgres.remove()
        if passed and not os.environ.get("SOAK_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # a failed run's logs and records are the way to its cause
            print(f"soak: kept {workdir}", flush=True)


def drain(load: subprocess.Popen, database_url: str, redis: RedisServer, limit: float) -> None:
    """Until the load has had its answers and nothing is moving any more, or `limit` s."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if load.poll() is not None and open_work(database_url, redis.client()) == 0:
            break
        time.sleep(1)
    if load.poll() is None:
        load.kill()
    load.wait()


def _exit_on(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)  # through run()'s clean-up: nothing it started is left running


def main() -> None:
    # Also SIGINT: started in the background, a process inherits it ignored.
    signal.signal(signal.SIGTERM, _exit_on)
    signal.signal(signal.SIGINT, _exit_on)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 10)))
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--rate", type=float, default=2.0, help="load actions a second")
    parser.add_argument("--drain", type=float, default=240, help="seconds the drain waits at most")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "soak" / "result.json")
    args = parser.parse_args()
    result = run(args.minutes, args.seed, args.out, users=args.users, rate=args.rate, drain_limit=args.drain)
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
