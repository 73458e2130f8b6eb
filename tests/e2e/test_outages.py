"""Redis and Postgres going away under load: the API refuses what it cannot keep
(503 with Retry-After), /ready names the part that is down, and every job that was
accepted ends exactly once when the part comes back."""

import os
import time
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests.fakes.pgbouncer import THROUGH_PGBOUNCER, PgBouncer
from tests.fakes.services import RedisServer, TcpProxy, wait_until
from tests.helpers import call, mark_verified, poll

pytestmark = pytest.mark.e2e

WORDS = " ".join(f"w{n}" for n in range(10))


def register(base: str) -> str:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    status, _, body = call(
        "POST", f"{base}/auth/register", {"email": email, "password": "a long password", "name": "Ops"}
    )
    assert status == 201, body
    mark_verified(body["user"]["id"], email)  # the bursts are more than an unverified account's day
    return body["access_token"]


def submit(base: str, token: str, prompt: str):
    return call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": prompt}}, token)


def test_a_redis_restart_during_a_burst_loses_no_accepted_job(start_stack, tmp_path, fake_openai):
    redis = RedisServer(tmp_path).start()
    base = start_stack(
        processes=("web", "worker_ai", "worker", "maintenance", "beat"),
        REDIS_URL=redis.url,
        MAINTENANCE_INTERVAL="1",
        REQUEUE_STALE_AFTER="3",
    )
    token = register(base)
    accepted, refused = [], []

    def burst(count: int, label: str) -> None:
        for n in range(count):
            status, headers, body = submit(base, token, f"burst-{label}-{n} [[slow:0.05]] {WORDS}")
            if status == 202:
                accepted.append(body["id"])
            else:
                assert status == 503 and headers["Retry-After"] == "5", body
                refused.append(body)

    burst(12, "before")
    redis.stop()  # everything queued in Redis is gone with it
    burst(3, "down")
    status, _, ready = call("GET", f"{base}/ready")
    assert status == 503 and ready["checks"]["redis"].startswith("unavailable")
    assert ready["checks"]["database"] == "ok"
    redis.start()
    wait_until(lambda: call("GET", f"{base}/ready")[0] == 200, 30, message="ready again")
    burst(8, "after")

    assert len(refused) == 3 and all("Retry" in body["message"] for body in refused)
    assert len(accepted) == 20
    finished = [poll(base, token, {"id": job_id, "status": "queued"}, timeout=90) for job_id in accepted]
    assert [job["status"] for job in finished] == ["succeeded"] * 20
    # Each result was recorded once, from one provider call's usage.
    for job in finished:
        assert job["output"]["text"].endswith(WORDS) and job["usage"]["output_tokens"] > 0
    # Nothing refused was kept.
    status, _, page = call("GET", f"{base}/jobs?limit=100", token=token)
    assert sorted(job["id"] for job in page["items"]) == sorted(accepted)
    redis.stop()


@pytest.fixture(params=["direct", "pgbouncer"])
def postgres_route(request):
    """A proxy in front of Postgres that the test cuts, and the environment that reaches
    Postgres through it: directly, or through PgBouncer in transaction mode."""
    url = make_url(os.environ["DATABASE_URL"])
    proxy = TcpProxy(url.port or 5432)
    if request.param == "direct":
        yield proxy, {"DATABASE_URL": url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)}
    else:
        bouncer = PgBouncer(proxy.port).start()
        yield proxy, {"DATABASE_URL": bouncer.url(url.database), **THROUGH_PGBOUNCER}
        bouncer.stop()
    proxy.close()


def test_a_postgres_restart_mid_job_keeps_the_result(postgres_route, start_stack, fake_openai):
    proxy, environment = postgres_route
    base = start_stack(**environment, JOB_LEASE_SECONDS="15")
    token = register(base)
    status, _, job = submit(base, token, f"pg-restart [[slow:0.1]] {WORDS} {WORDS}")
    assert status == 202
    wait_until(
        lambda: any("pg-restart" in r["messages"][-1]["content"] for r in fake_openai.requests),
        20,
        message="the provider call",
    )

    proxy.cut()
    status, headers, body = submit(base, token, "while the database is down")
    assert status == 503 and headers["Retry-After"] == "5"
    assert "database" in body["message"].lower()
    status, _, ready = call("GET", f"{base}/ready")
    assert status == 503 and ready["checks"]["database"].startswith("unavailable")
    status, headers, body = call("GET", f"{base}/jobs/{job['id']}", token=token)  # a poll, too
    assert status == 503 and headers["Retry-After"] == "5" and "database" in body["message"].lower()
    time.sleep(3)  # the job's stream ends while the database is away
    proxy.restore()
    # PgBouncer refuses clients until a login to the server succeeds again (server_login_retry):
    # a client sees 503 with Retry-After for that moment, and then all is as before.
    wait_until(lambda: call("GET", f"{base}/ready")[0] == 200, 30, message="ready again")

    job = poll(base, token, job, timeout=60)
    assert job["status"] == "succeeded" and job["attempt"] == 1
    assert sum("pg-restart" in r["messages"][-1]["content"] for r in fake_openai.requests) == 1
