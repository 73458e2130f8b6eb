"""Conveyor behind PgBouncer in transaction mode (tests/fakes/pgbouncer.py): with
DB_PREPARED_STATEMENTS=false the walkthrough of test_pipeline.py runs through it on
real processes, several jobs at once, each finished once; left on, a prepared
statement breaks as soon as PgBouncer hands the client another server connection.
Statement timeouts come from the role there (a startup option is refused). The
Postgres outage through it is test_outages.py's, parametrized."""

import dataclasses
import os
import uuid

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from db import raw
from db.session import init_engine_from, session_scope, standalone
from tests import rows
from tests.e2e.conftest import launch_stack
from tests.fakes.pgbouncer import THROUGH_PGBOUNCER, PgBouncer
from tests.helpers import call, mark_verified, poll
from workers.tools import get_tool

pytestmark = pytest.mark.e2e

DATABASE = make_url(os.environ["DATABASE_URL"]).database


@pytest.fixture(scope="module")
def pgbouncer():
    bouncer = PgBouncer(make_url(os.environ["DATABASE_URL"]).port or 5432).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def stack(pgbouncer, fake_openai, tmp_path_factory):
    """web, worker_ai (two processes) and worker, every connection through PgBouncer."""
    base, stop = launch_stack(
        tmp_path_factory.mktemp("pgbouncer-stack"), DATABASE_URL=pgbouncer.url(DATABASE), **THROUGH_PGBOUNCER
    )
    yield base
    stop()


@pytest.fixture
def through_pgbouncer(settings, pgbouncer):
    """This process's engine through PgBouncer, as the settings given make it."""

    def use(**changes):
        init_engine_from(dataclasses.replace(settings, database_url=pgbouncer.url(DATABASE), **changes))

    yield use
    init_engine_from(settings)


def register(base: str) -> str:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    status, _, body = call(
        "POST", f"{base}/auth/register", {"email": email, "password": "a long password", "name": "Ada"}
    )
    assert status == 201, body
    mark_verified(body["user"]["id"], email)
    return body["access_token"]


def test_the_walkthrough_runs_through_pgbouncer(stack, pgbouncer, fake_openai):
    before = pgbouncer.stats(DATABASE).get("total_xact_count", 0)
    token = register(stack)
    status, _, job = call(
        "POST", f"{stack}/jobs", {"tool": "text", "input": {"prompt": "Name three queues."}}, token
    )
    assert status == 202, job
    job = poll(stack, token, job)
    assert job["status"] == "succeeded" and job["attempt"] == 1, job
    assert job["output"] == {"text": "Echo: Name three queues."}
    usage = job["usage"]
    expected = -(-(usage["input_tokens"] * 150_000 + usage["output_tokens"] * 600_000) // 1_000_000)
    assert usage["output_tokens"] > 0 and usage["cost_micros"] == expected

    status, _, job = call(
        "POST",
        f"{stack}/jobs",
        {"tool": "roadmap", "input": {"goal": "Move from teaching into UX research", "timeline": "90_days"}},
        token,
    )
    job = poll(stack, token, job)
    assert job["status"] == "succeeded" and get_tool("roadmap").output_errors(job["output"]) == {}
    assert pgbouncer.stats(DATABASE)["total_xact_count"] > before  # it went through PgBouncer


def test_jobs_at_once_each_finish_once_through_pgbouncer(stack, fake_openai):
    token = register(stack)
    prompts = [f"pooled-{n} [[slow:0.02]] one two three" for n in range(8)]
    jobs = []
    for prompt in prompts:
        status, _, job = call("POST", f"{stack}/jobs", {"tool": "text", "input": {"prompt": prompt}}, token)
        assert status == 202, job
        jobs.append(job)
    finished = [poll(stack, token, job, timeout=60) for job in jobs]
    assert [(job["status"], job["attempt"]) for job in finished] == [("succeeded", 1)] * len(prompts)
    for prompt in prompts:  # one provider call each
        assert sum(prompt in request["messages"][-1]["content"] for request in fake_openai.requests) == 1
    status, _, page = call("GET", f"{stack}/jobs?limit=100", token=token)
    assert sorted(job["id"] for job in page["items"]) == sorted(job["id"] for job in jobs)


NAME_OF = raw.Prepared("SELECT name FROM users WHERE id = %(id)s")


def reconnect(pgbouncer: PgBouncer) -> None:
    """PgBouncer's RECONNECT: server connections are replaced once released, as happens when
    it hands a client's next transaction to another one."""
    connection = psycopg2.connect(host="127.0.0.1", port=pgbouncer.port, user="postgres", dbname="pgbouncer")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"RECONNECT {DATABASE}")
    connection.close()


def test_a_prepared_statement_breaks_on_the_next_server_connection(through_pgbouncer, pgbouncer):
    user_id = rows.make_user(name="Ada")
    through_pgbouncer(db_statement_timeout=0, db_worker_statement_timeout=0)
    with standalone() as connection:
        assert raw.fetch_one(connection, NAME_OF, {"id": user_id}) == ("Ada",)
        reconnect(pgbouncer)
        with pytest.raises(OperationalError, match="does not exist"):
            raw.fetch_one(connection, NAME_OF, {"id": user_id})


def test_without_prepared_statements_the_next_server_connection_is_fine(through_pgbouncer, pgbouncer):
    user_id = rows.make_user(name="Ada")
    through_pgbouncer(db_prepared_statements=False, db_statement_timeout=0, db_worker_statement_timeout=0)
    with standalone() as connection:
        assert raw.fetch_one(connection, NAME_OF, {"id": user_id}) == ("Ada",)
        reconnect(pgbouncer)
        assert raw.fetch_one(connection, NAME_OF, {"id": user_id}) == ("Ada",)


@pytest.fixture
def role_timeout(pgbouncer):
    """Set the connecting role's statement_timeout in this run's database, as
    docs/deployment.md says to behind PgBouncer; PgBouncer's server connections are
    replaced, so that each new one starts with it."""

    def set_to(value: str | None) -> None:
        with session_scope() as session:
            setting = f"SET statement_timeout = '{value}'" if value else "RESET statement_timeout"
            session.execute(text(f'ALTER ROLE postgres IN DATABASE "{DATABASE}" {setting}'))
        reconnect(pgbouncer)

    yield set_to
    set_to(None)


def test_the_roles_statement_timeout_holds_through_pgbouncer(through_pgbouncer, role_timeout):
    role_timeout("1s")
    through_pgbouncer(db_prepared_statements=False, db_statement_timeout=0, db_worker_statement_timeout=0)
    with standalone() as connection:
        assert raw.fetch_one(connection, "SHOW statement_timeout", {}) == ("1s",)
        with pytest.raises(OperationalError, match="canceling statement due to statement timeout"):
            raw.fetch_one(connection, "SELECT pg_sleep(3)", {})


def test_a_statement_timeout_left_on_is_refused_at_connect_not_dropped(through_pgbouncer):
    through_pgbouncer(db_prepared_statements=False, db_statement_timeout=30)
    with pytest.raises(OperationalError, match="unsupported startup parameter: options"), standalone():
        pass
