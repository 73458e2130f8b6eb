"""/health and /ready with no worker running (this module starts none): readiness
names each part that is not ready and why. Outages of Postgres and Redis under a
real stack are in tests/e2e/test_operations_stack.py and test_outages.py."""

import socket
import time

import pytest

from db.redis_client import get_redis
from db.session import init_engine, init_engine_from
from tests.helpers import API
from workers import queues

ALL_QUEUES = ["ai_priority", "ai", "default", "email", "exports", "maintenance"]


def test_health_answers_whatever_else_is_down(client):
    response = client.get(f"{API}/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "checks": {}}


def test_ready_is_503_and_names_the_queues_nobody_consumes(client):
    response = client.get(f"{API}/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["workers"] == f"unavailable: no live worker consumes {', '.join(ALL_QUEUES)}"


def test_ready_counts_only_the_queues_live_workers_consume(client):
    redis = get_redis()
    queues.write_heartbeat(redis, hostname="ai@box", queues=["ai_priority", "ai"], interval=5)
    queues.write_heartbeat(redis, hostname="default@box", queues=["default", "email"], interval=5)
    checks = client.get(f"{API}/ready").get_json()["checks"]
    assert checks["workers"] == "unavailable: no live worker consumes exports, maintenance"

    queues.write_heartbeat(redis, hostname="exports@box", queues=["exports"], interval=5)
    queues.write_heartbeat(redis, hostname="maintenance@box", queues=["maintenance"], interval=5)
    response = client.get(f"{API}/ready")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "workers": "ok"},
    }

    queues.leave(redis, hostname="exports@box")  # a clean shutdown is noticed at once
    assert client.get(f"{API}/ready").status_code == 503


def test_a_worker_that_stops_beating_is_gone_after_its_missed_beats(client):
    redis = get_redis()
    for name in ALL_QUEUES:
        queues.write_heartbeat(
            redis, hostname=f"{name}@box", queues=[name], interval=0.1
        )  # expires after 0.3 s
    assert client.get(f"{API}/ready").status_code == 200
    time.sleep(0.5)
    assert (
        client.get(f"{API}/ready").get_json()["checks"]["workers"].startswith("unavailable: no live worker")
    )
    assert queues.workers_by_queue(redis, ["ai"]) == {"ai": []}
    assert redis.smembers(queues.WORKERS_SET) == set()  # the dead are forgotten


@pytest.fixture
def database_down(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    init_engine(
        f"postgresql+psycopg2://postgres@127.0.0.1:{port}/nothing", connect_args={"connect_timeout": 2}
    )
    yield
    init_engine_from(settings)


def test_ready_names_the_database_when_it_cannot_be_reached(client, database_down):
    response = client.get(f"{API}/ready")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == "unavailable: OperationalError"
    assert checks["redis"] == "ok"
