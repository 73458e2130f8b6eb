"""POST /jobs/batch's refusals and limits, with no worker: the size limit, another
user's batch, per-item quota refusals, paging, and how the plan's request rate counts
a batch (as one request)."""

import dataclasses
import datetime as dt

import pytest

from tests.helpers import API, register
from workers import plans


@pytest.fixture
def headers(client):
    return register(client)[0]


def text_job(prompt: str, **extra) -> dict:
    return {"tool": "text", "input": {"prompt": prompt}, **extra}


def post_batch(client, headers, jobs, **extra):
    return client.post(f"{API}/jobs/batch", json={"jobs": jobs, **extra}, headers=headers)


def test_more_than_500_jobs_are_refused(client, headers):
    response = post_batch(client, headers, [text_job("x")] * 501)
    assert response.status_code == 422
    body = response.get_json()
    assert "1 to 500 jobs" in str(body["errors"]) and "Split it" in str(body["errors"])
    assert client.get(f"{API}/jobs", headers=headers).get_json()["items"] == []


def test_an_empty_batch_is_refused(client, headers):
    assert post_batch(client, headers, []).status_code == 422


def test_another_users_batch_is_404(client, headers):
    batch_id = post_batch(client, headers, [text_job("mine")]).get_json()["batch"]["id"]
    other = register(client)[0]
    assert client.get(f"{API}/batches/{batch_id}", headers=other).status_code == 404
    assert client.post(f"{API}/batches/{batch_id}/cancel", headers=other).status_code == 404
    assert client.get(f"{API}/batches/{batch_id}", headers=headers).status_code == 200


def test_items_past_the_days_jobs_get_their_own_429(client, headers, monkeypatch):
    monkeypatch.setitem(plans.PLANS, "free", dataclasses.replace(plans.PLANS["free"], jobs_per_day=3))
    body = post_batch(client, headers, [text_job(f"n{n}") for n in range(5)]).get_json()
    assert [("job" in item) for item in body["items"]] == [True, True, True, False, False]
    assert {item["error"]["code"] for item in body["items"][3:]} == {429}
    assert body["batch"]["total"] == 3


def test_a_batch_counts_as_one_request_against_the_plans_rate(client, headers, monkeypatch):
    monkeypatch.setitem(
        plans.PLANS, "free", dataclasses.replace(plans.PLANS["free"], request_rate="2/minute")
    )
    assert post_batch(client, headers, [text_job(f"n{n}") for n in range(5)]).status_code == 202
    assert post_batch(client, headers, [text_job("again")]).status_code == 202
    assert post_batch(client, headers, [text_job("third")]).status_code == 429


def test_the_jobs_come_a_page_at_a_time_in_item_order(client, headers):
    batch_id = post_batch(client, headers, [text_job(f"p{n}") for n in range(5)]).get_json()["batch"]["id"]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/batches/{batch_id}", query_string=query, headers=headers).get_json()
        seen += [job["input"]["prompt"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{n}" for n in range(5)]
    assert page["counts"]["queued"] == 5 and page["total"] == 5


def test_a_repeated_key_within_a_batch_is_refused_for_the_later_item(client, headers):
    body = post_batch(
        client, headers, [text_job("a", idempotency_key="k"), text_job("b", idempotency_key="k")]
    )
    items = body.get_json()["items"]
    assert "job" in items[0] and items[1]["error"]["code"] == 422


def test_a_batch_whose_every_item_fails_is_finished_with_no_job(client, headers):
    body = post_batch(client, headers, [{"tool": "no-such-tool", "input": {}}, "not an object"]).get_json()
    assert [item["error"]["code"] for item in body["items"]] == [422, 422]
    assert body["batch"]["total"] == 0 and body["batch"]["status"] == "finished"


def test_an_unsafe_batch_webhook_url_refuses_the_whole_request(client, headers):
    response = post_batch(client, headers, [text_job("x")], webhook_url="http://169.254.169.254/latest")
    assert response.status_code == 422 and "webhook_url" in response.get_json()["message"]
    assert client.get(f"{API}/jobs", headers=headers).get_json()["items"] == []


def test_an_items_service_tier_is_honoured_not_ignored(client, headers):
    # The shipped catalogue sells no model on flex: asking for it is the item's own 422.
    body = post_batch(
        client, headers, [text_job("a", service_tier="standard"), text_job("b", service_tier="flex")]
    )
    items = body.get_json()["items"]
    assert items[0]["job"]["service_tier"] == "standard"
    assert (
        items[1]["error"]["code"] == 422
        and "no flex lane" in items[1]["error"]["errors"]["json"]["service_tier"][0]
    )


def test_an_item_cannot_be_held_for_the_batch_lane(client, headers):
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=6)).isoformat()
    body = post_batch(client, headers, [text_job("a", lane="batch"), text_job("b", deadline=deadline)])
    items = body.get_json()["items"]
    assert [item["error"]["code"] for item in items] == [422, 422]
    assert "lane" in items[0]["error"]["errors"]["json"] and "deadline" in items[1]["error"]["errors"]["json"]


def test_get_batches_lists_the_callers_batches_newest_first_with_counts(client, headers):
    made = [post_batch(client, headers, [text_job(f"b{n}-{i}") for i in range(n + 1)]) for n in range(3)]
    ids = [response.get_json()["batch"]["id"] for response in made]
    client.post(f"{API}/batches/{ids[1]}/cancel", headers=headers)
    post_batch(client, register(client)[0], [text_job("someone else's")])

    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/batches", query_string=query, headers=headers).get_json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [batch["id"] for batch in seen] == ids[::-1]
    by_id = {batch["id"]: batch for batch in seen}
    assert by_id[ids[2]]["counts"]["queued"] == 3 and by_id[ids[2]]["total"] == 3
    assert by_id[ids[1]]["counts"]["canceled"] == 2 and by_id[ids[1]]["status"] == "finished"
    assert "jobs" not in by_id[ids[0]]


def test_get_batches_refuses_a_bad_cursor_and_limit(client, headers):
    assert client.get(f"{API}/batches?cursor=nonsense", headers=headers).status_code == 422
    assert client.get(f"{API}/batches?limit=0", headers=headers).status_code == 422
    assert client.get(f"{API}/batches").status_code == 401
