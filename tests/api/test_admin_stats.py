"""GET /admin/stats on a known set of jobs: counts, failure rates, wait and run
percentiles, feedback per tool, tokens and cost per model, what each lane saved; and who may ask, and the
range it takes."""

import datetime as dt

import pytest
from sqlalchemy import text

from db.session import session_scope
from tests import rows
from tests.api.test_admin import make_admin
from tests.helpers import API, assert_error, register

STATS = f"{API}/admin/stats"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
SUBMITTED = NOW - dt.timedelta(days=1)


def timed(job_id, *, wait, run=None, created=SUBMITTED, rating=None):
    """Set a job's submit, start and finish times (seconds apart), and its feedback."""
    with session_scope() as session:
        session.execute(
            text(
                "UPDATE jobs SET created_at = :created, started_at = :started, "
                "finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE CAST(:finished AS timestamptz) END, "
                "feedback_rating = :rating WHERE id = :id"
            ),
            {
                "id": job_id,
                "created": created,
                "started": None if wait is None else created + dt.timedelta(seconds=wait),
                "finished": None if run is None else created + dt.timedelta(seconds=wait + run),
                "rating": rating,
            },
        )


@pytest.fixture
def known_jobs():
    user = rows.make_user()
    a = rows.finished_job(user, output={"text": "a"})
    timed(a, wait=1, run=2, rating="up")
    timed(rows.finished_job(user, output={"text": "b"}), wait=3, run=4, rating="down")
    c = rows.finished_job(user, status="failed", error_code="provider_error")
    timed(c, wait=5, run=6, rating="down")
    roadmap = rows.finished_job(
        user, tool="roadmap", input={"goal": "g"}, status="failed", error_code="timeout"
    )
    timed(roadmap, wait=10, run=20)
    timed(rows.queued_job(user), wait=None)
    old = rows.finished_job(user, status="failed", error_code="provider_error")
    timed(old, wait=100, run=100, created=NOW - dt.timedelta(days=10), rating="up")
    rows.add_usage(
        rows.usage_row(user, job_id=a, tokens=(100, 50), cost_micros=10, at=SUBMITTED),
        rows.usage_row(
            user,
            job_id=a,
            call_index=1,
            tokens=(20, 10),
            cost_micros=2,
            at=SUBMITTED,
            lane="flex",
            standard_cost_micros=4,
        ),
        rows.usage_row(
            user, job_id=c, model="gpt-4o", tokens=(1000, 500), cost_micros=7500, billed=False, at=SUBMITTED
        ),
        rows.usage_row(user, job_id=old, tokens=(9, 9), cost_micros=9, at=NOW - dt.timedelta(days=10)),
    )


def test_the_numbers_of_a_known_set_of_jobs(client, known_jobs):
    admin = make_admin(client)
    span = {"from": (NOW - dt.timedelta(days=2)).isoformat(), "to": NOW.isoformat()}
    response = client.get(STATS, headers=admin, query_string=span)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()

    assert body["jobs"]["total"] == 5
    assert body["jobs"]["by_status"] == {
        "scheduled": 0,
        "queued": 1,
        "running": 0,
        "succeeded": 2,
        "failed": 2,
        "canceled": 0,
        "expired": 0,
    }
    assert body["jobs"]["by_tool"] == {"text": 4, "roadmap": 1}
    assert body["jobs"]["by_model"] == {"gpt-4o-mini": 5}
    assert body["failures"] == {
        "finished": 4,
        "failed": 2,
        "rate": 0.5,
        "by_code": [
            {"code": "provider_error", "jobs": 1, "rate": 0.25},
            {"code": "timeout", "jobs": 1, "rate": 0.25},
        ],
    }
    # Continuous percentiles: of (1, 3, 5) s the 95th is 3 + 0.9 * (5 - 3) = 4.8 s.
    assert body["tools"] == [
        {
            "tool": "roadmap",
            "jobs": 1,
            "queue_wait_seconds": {"p50": 10.0, "p95": 10.0},
            "run_seconds": {"p50": 20.0, "p95": 20.0},
            "feedback": {"up": 0, "down": 0},
        },
        {
            "tool": "text",
            "jobs": 4,
            "queue_wait_seconds": {"p50": 3.0, "p95": 4.8},
            "run_seconds": {"p50": 4.0, "p95": 5.8},
            "feedback": {"up": 1, "down": 2},
        },
    ]
    assert body["models"] == [
        {
            "model": "gpt-4o",
            "calls": 1,
            "jobs": 1,
            "input_tokens": 1000,
            "output_tokens": 500,
            "cost_micros": 7500,
            "billed_cost_micros": 0,
        },
        {
            "model": "gpt-4o-mini",
            "calls": 2,
            "jobs": 1,
            "input_tokens": 120,
            "output_tokens": 60,
            "cost_micros": 12,
            "billed_cost_micros": 12,
        },
    ]
    assert body["lanes"] == [
        {
            "lane": "flex",
            "calls": 1,
            "jobs": 1,
            "cost_micros": 2,
            "standard_cost_micros": 4,
            "saved_micros": 2,
        },
        {
            "lane": "standard",
            "calls": 2,
            "jobs": 2,
            "cost_micros": 7510,
            "standard_cost_micros": 7510,
            "saved_micros": 0,
        },
    ]


def test_the_default_range_is_the_last_seven_days(client, known_jobs):
    body = client.get(STATS, headers=make_admin(client)).get_json()
    assert body["jobs"]["total"] == 5  # the job of ten days ago is out
    assert dt.datetime.fromisoformat(body["to"]) - dt.datetime.fromisoformat(body["from"]) == dt.timedelta(
        days=7
    )


def test_an_empty_range_has_no_rates(client):
    body = client.get(STATS, headers=make_admin(client)).get_json()
    assert body["jobs"]["total"] == 0 and body["failures"]["rate"] is None and body["tools"] == []


@pytest.mark.parametrize(
    "query, message",
    [
        ({"from": "2026-01-01", "to": "2026-05-01"}, "at most 92 days"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, "later than"),
        ({"from": "yesterday"}, "datetime"),
    ],
)
def test_a_bad_range_is_422(client, query, message):
    response = client.get(STATS, headers=make_admin(client), query_string=query)
    assert response.status_code == 422 and message in str(response.get_json()["errors"]), response.get_json()


def test_only_admins_with_an_access_token(client):
    user, _ = register(client)
    assert_error(client.get(STATS, headers=user), 403, "admin")
    admin = make_admin(client)
    key = client.post(f"{API}/api-keys", headers=admin, json={"name": "ops"}).get_json()["key"]
    assert client.get(STATS, headers={"X-API-Key": key}).status_code in (401, 403)
    assert client.get(STATS).status_code == 401
