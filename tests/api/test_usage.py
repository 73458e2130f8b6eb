"""GET /usage: the caller's billed usage grouped by day, tool or model, with totals
and the quota; and every parameter error a client can make."""

import datetime as dt
import uuid

import pytest

from tests import rows
from tests.helpers import API, register
from workers import plans

DAY1, DAY2, DAY3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


@pytest.fixture
def account(client):
    headers, body = register(client)
    return headers, uuid.UUID(body["user"]["id"])


def add_call(
    user_id,
    day,
    *,
    tool="text",
    model="gpt-4o-mini",
    tokens=(100, 50),
    cost=10,
    billed=True,
    job_id=None,
    index=0,
):
    at = dt.datetime.combine(day, dt.time(23, 59), tzinfo=dt.UTC)
    rows.add_usage(
        rows.usage_row(
            user_id,
            job_id=job_id,
            call_index=index,
            tool=tool,
            model=model,
            tokens=tokens,
            cost_micros=cost,
            billed=billed,
            at=at,
        )
    )


@pytest.fixture
def workload(account, client):
    headers, user_id = account
    repaired = uuid.uuid4()
    add_call(user_id, DAY1, tokens=(100, 50), cost=10, job_id=repaired)
    add_call(
        user_id, DAY1, tokens=(30, 20), cost=5, job_id=repaired, index=1
    )  # its repair call: the same job
    add_call(user_id, DAY2, tool="roadmap", model="gpt-4o", tokens=(1000, 500), cost=7500)
    add_call(user_id, DAY3, tool="roadmap", tokens=(10, 10), cost=1)
    add_call(user_id, DAY2, tokens=(9999, 9999), cost=9999, billed=False)  # an attempt that was not billed
    stranger, _ = register(client)
    other_id = uuid.UUID(client.get(f"{API}/users/me", headers=stranger).get_json()["id"])
    add_call(other_id, DAY2, tokens=(777, 777), cost=777)  # someone else's
    return headers


def usage(client, headers, **params):
    return client.get(f"{API}/usage", headers=headers, query_string=params)


def test_grouped_by_day(client, workload):
    response = usage(client, workload, **{"from": "2026-03-01", "to": "2026-03-03"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["group_by"] == "day" and body["period"] == {"from": "2026-03-01", "to": "2026-03-03"}
    assert body["items"] == [
        {
            "key": "2026-03-01",
            "input_tokens": 130,
            "output_tokens": 70,
            "cost_micros": 15,
            "jobs": 1,
            "standard_cost_micros": 15,
            "saved_micros": 0,
        },
        {
            "key": "2026-03-02",
            "input_tokens": 1000,
            "output_tokens": 500,
            "cost_micros": 7500,
            "jobs": 1,
            "standard_cost_micros": 7500,
            "saved_micros": 0,
        },
        {
            "key": "2026-03-03",
            "input_tokens": 10,
            "output_tokens": 10,
            "cost_micros": 1,
            "jobs": 1,
            "standard_cost_micros": 1,
            "saved_micros": 0,
        },
    ]
    assert body["totals"] == {
        "input_tokens": 1140,
        "output_tokens": 580,
        "cost_micros": 7516,
        "jobs": 3,
        "standard_cost_micros": 7516,
        "saved_micros": 0,
    }
    assert body["plan"] == "free"


def test_grouped_by_tool_and_by_model(client, workload):
    span = {"from": "2026-03-01", "to": "2026-03-03"}
    by_tool = usage(client, workload, group_by="tool", **span).get_json()["items"]
    assert [(i["key"], i["input_tokens"], i["jobs"]) for i in by_tool] == [
        ("roadmap", 1010, 2),
        ("text", 130, 1),
    ]
    by_model = usage(client, workload, group_by="model", **span).get_json()["items"]
    assert [(i["key"], i["cost_micros"]) for i in by_model] == [("gpt-4o", 7500), ("gpt-4o-mini", 16)]


def test_the_range_includes_both_ends_and_nothing_else(client, workload):
    body = usage(client, workload, **{"from": "2026-03-02", "to": "2026-03-02"}).get_json()
    assert [item["key"] for item in body["items"]] == ["2026-03-02"]
    assert body["totals"]["input_tokens"] == 1000


def test_the_quota_is_reported(client, account):
    headers, _ = account
    body = usage(client, headers).get_json()
    free = plans.PLANS["free"]
    today = dt.datetime.now(dt.UTC).date()
    assert body["quota"] == {
        "limit": free.monthly_tokens,
        "used": 0,
        "reserved": 0,
        "remaining": free.monthly_tokens,
        "period_start": today.replace(day=1).isoformat(),
        "resets_on": (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1).isoformat(),
    }
    assert body["period"] == {"from": today.replace(day=1).isoformat(), "to": today.isoformat()}
    assert body["items"] == [] and body["totals"]["jobs"] == 0


BAD_PARAMETERS = [
    ({"from": "2026-03-05", "to": "2026-03-01"}, "to", "before"),
    ({"from": "2025-01-01", "to": "2026-03-01"}, "to", "366"),
    ({"group_by": "week"}, "group_by", "day, tool, model"),
    ({"from": "yesterday"}, "from", "date"),
]


def test_bad_parameters_are_422_naming_the_field(client, account):
    headers, _ = account
    for params, field, says in BAD_PARAMETERS:
        response = usage(client, headers, **params)
        assert response.status_code == 422, params
        messages = " ".join(response.get_json()["errors"]["query"][field])
        assert says in messages.lower() or says in messages, (params, messages)


def test_usage_needs_a_login(client):
    assert client.get(f"{API}/usage").status_code == 401


def test_a_program_reads_usage_with_its_api_key(client, account):
    headers, _ = account
    key = client.post(f"{API}/api-keys", json={"name": "ci"}, headers=headers).get_json()["key"]
    response = client.get(f"{API}/usage", headers={"X-API-Key": key})
    assert response.status_code == 200 and response.get_json()["plan"] == "free"
