"""Real services for every test: a database and a Redis db of this run's own, the
local OpenAI-compatible server behind the real SDK, and a real Celery worker.

The environment is set in pytest_configure, before any app module reads settings,
and everything made here is dropped again in pytest_unconfigure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql
from redis import Redis

# The server the run makes its database on (connected to its `postgres` database).
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@localhost:5432/postgres")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://localhost:6379")
CLAIM_KEY = "conveyor:test-run"

_run: dict[str, object] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _claim_redis_db() -> int:
    """A Redis database no other run is using (empty, claimed with SET NX)."""
    for index in range(15, 0, -1):
        client = Redis.from_url(f"{REDIS_BASE}/{index}")
        if client.dbsize() == 0 and client.set(CLAIM_KEY, os.getpid(), nx=True, ex=3600):
            return index
    pytest.exit("no free Redis database (1-15) for the test run", returncode=3)


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller runs no test: each of its workers makes its own
    from scripts.preflight import problems

    found = problems(ADMIN_URL, f"{REDIS_BASE}/0")
    if found:
        pytest.exit("\n".join(f"error: {problem}" for problem in found), returncode=3)

    db_name = f"conveyor_test_{os.getpid()}_{secrets.token_hex(3)}"
    redis_db = _claim_redis_db()
    openai_port = _free_port()
    storage_dir = tempfile.mkdtemp(prefix="conveyor-test-storage-")
    _run.update(db_name=db_name, redis_db=redis_db, openai_port=openai_port, storage_dir=storage_dir)
    os.environ.update(
        CONVEYOR_ENV="test",
        DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}",
        REDIS_URL=f"{REDIS_BASE}/{redis_db}",
        AI_PROVIDER="openai",
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=f"http://127.0.0.1:{openai_port}/v1",
        OPENAI_TIMEOUT="3",
        PROVIDER_MAX_ATTEMPTS="3",
        PROVIDER_BACKOFF_BASE="0.01",
        PROVIDER_BACKOFF_MAX="0.05",
        SECRET_KEY=secrets.token_urlsafe(32),
        JWT_SECRET_KEY=secrets.token_urlsafe(32),
        JOB_LEASE_SECONDS="6",
        WORKER_HEARTBEAT_INTERVAL="1",  # /ready sees a (re)started worker within a second
        LOG_LEVEL="WARNING",
        PASSWORD_HASH_PROFILE="cheapest",  # argon2id at its lowest cost: every test hashes
        # Every test registers from 127.0.0.1; tests/api/test_register_limits.py sets small ones.
        REGISTER_RATE_LIMIT_PER_IP="10000/hour",
        REGISTER_RATE_LIMIT_PER_NETWORK="10000/hour",
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1,localhost",  # the tests' local webhook receivers
        STORAGE_URL=f"file://{storage_dir}",  # never the repo's var/storage
    )
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    _migrate("head")


def pytest_unconfigure(config: pytest.Config) -> None:
    if "db_name" not in _run:
        return
    shutil.rmtree(_run["storage_dir"], ignore_errors=True)
    from db.session import get_engine

    get_engine().dispose()
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_run["db_name"])))
    Redis.from_url(f"{REDIS_BASE}/{_run['redis_db']}").flushdb()


def _admin(statement: sql.Composable) -> None:
    connection = psycopg2.connect(ADMIN_URL)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(statement)
    connection.close()


def _migrate(revision: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config("alembic.ini")
    config.attributes["configure_logger"] = False
    (command.downgrade if down else command.upgrade)(config, revision)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def settings():
    from settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def fake_openai():
    from tests.fakes.openai_server import FakeOpenAI

    fake = FakeOpenAI(port=_run["openai_port"]).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def clean_state(fake_openai) -> Iterator[None]:
    """Each test starts with empty tables, no Conveyor keys in Redis, a fresh fake."""
    reset_state(fake_openai)
    yield


def reset_state(fake_openai) -> None:
    """Empty tables, no Conveyor keys in Redis (but the run's claim), a fresh fake."""
    import db.models  # noqa: F401 - every table is on the metadata
    from db.base import Base
    from db.redis_client import KEY_PREFIX, get_redis
    from db.session import session_scope

    # DELETE, children first: on tables this small it is cheap, where TRUNCATE makes new
    # files for every table on every test.
    with session_scope() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    redis = get_redis()
    for key in redis.scan_iter(f"{KEY_PREFIX}*"):
        if key != CLAIM_KEY:
            redis.delete(key)
    fake_openai.reset()


@pytest.fixture
def app(settings):
    from api import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode, over real HTTP on a free port: `s3_server.settings(app_settings)`
    gives settings that store in a fresh bucket of it."""
    from tests.fakes.s3 import S3Server

    server = S3Server(port=_free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webhook_server():
    from tests.fakes.webhook_receiver import WebhookReceiver

    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver(webhook_server):
    """A local webhook receiver (tests/fakes/webhook_receiver.py), empty for each test."""
    webhook_server.reset()
    return webhook_server


@pytest.fixture(scope="session")
def smtp():
    """A real SMTP server (aiosmtpd) for the tests' mail; each user resets it first."""
    from tests.fakes.smtp_server import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_stripe():
    """The local Stripe stand-in (tests/fakes/stripe_server.py) the SDK reaches over HTTP."""
    from tests.fakes.stripe_server import FakeStripe

    fake = FakeStripe(api_key="sk_test_conveyor").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory):
    """The suite's throwaway CA (tests/fakes/tls.py) and a server context it signed for localhost."""
    from tests.fakes.tls import make_local_ca

    return make_local_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def _fake_stripe_tls_server(local_ca):
    from tests.fakes.stripe_server import FakeStripe

    fake = FakeStripe(api_key="sk_test_conveyor", ssl_context=local_ca.server_context).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_stripe_tls(_fake_stripe_tls_server):
    """The Stripe stand-in over HTTPS (`url` is https://localhost:<port>), signed by `local_ca`, reset."""
    _fake_stripe_tls_server.reset()
    return _fake_stripe_tls_server


@pytest.fixture
def stripe_settings(settings, fake_stripe):
    """Settings with billing on, pointed at a freshly reset stand-in."""
    import dataclasses

    fake_stripe.reset()
    return dataclasses.replace(
        settings,
        stripe_secret_key=fake_stripe.api_key,
        stripe_webhook_secret="whsec_test_conveyor",
        stripe_api_base=fake_stripe.url,
        stripe_price_pro="price_pro_test",
        stripe_price_business="price_business_test",
    )


@pytest.fixture(scope="module")
def celery_worker(fake_openai):
    """A real Celery worker consuming every queue (celeryconfig.QUEUES) over the real Redis broker.

    Module-scoped: tests elsewhere rely on jobs staying queued with no worker."""
    from celery.contrib.testing.worker import start_worker

    from workers.celery_app import app as celery_app

    celery_app.control.purge()
    with start_worker(
        celery_app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        queues=["ai_priority", "ai", "default", "email", "exports", "maintenance"],
        loglevel="WARNING",
        shutdown_timeout=20,
    ) as worker:
        yield worker
