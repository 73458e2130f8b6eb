"""POST /jobs/batch through HTTP with a real Celery worker: per-item answers, the valid
jobs run, the batch's counts move, cancel, an idempotent retry, and one signed
`batch.finished` webhook once every job has ended."""

import time

import pytest

from tasks import webhooks as webhook_tasks
from tests.helpers import API, register, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def headers(client, celery_worker, receiver):
    receiver.reset()
    return register(client)[0]


def text_job(prompt: str, **extra) -> dict:
    return {"tool": "text", "input": {"prompt": prompt}, **extra}


def batch_until(client, headers, batch_id: str, done, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{API}/batches/{batch_id}", headers=headers)
        assert response.status_code == 200, response.get_json()
        batch = response.get_json()
        if done(batch):
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} not there after {timeout}s: {batch}")
        time.sleep(0.05)


def test_a_mixed_batch_answers_each_item_and_runs_the_valid_ones(client, headers, receiver):
    jobs = [
        text_job("one"),
        {"tool": "no-such-tool", "input": {"prompt": "x"}},
        text_job("two", idempotency_key="k-2"),
        {"tool": "text"},  # no input
        text_job("three [[fail:400]]"),
    ]
    response = client.post(
        f"{API}/jobs/batch", json={"jobs": jobs, "webhook_url": receiver.url("/batch")}, headers=headers
    )
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    items = body["items"]
    assert [item["index"] for item in items] == [0, 1, 2, 3, 4]
    assert [("job" in item, "error" in item) for item in items] == [
        (True, False),
        (False, True),
        (True, False),
        (False, True),
        (True, False),
    ]
    assert items[1]["error"]["code"] == 422 and "Unknown tool" in items[1]["error"]["message"]
    assert items[3]["error"]["errors"]["json"]["input"]
    batch_id = body["batch"]["id"]
    assert body["batch"]["total"] == 3 and body["batch"]["status"] == "active"
    assert response.headers["Location"].endswith(f"/batches/{batch_id}")
    assert {items[i]["job"]["batch_id"] for i in (0, 2, 4)} == {batch_id}

    assert wait_for(client, headers, items[0]["job"]["id"])["output"] == {"text": "Echo: one"}
    finished = batch_until(client, headers, batch_id, lambda batch: batch["status"] == "finished")
    assert finished["counts"]["succeeded"] == 2 and finished["counts"]["failed"] == 1
    assert finished["finished_at"] is not None
    assert [job["input"]["prompt"] for job in finished["jobs"]] == ["one", "two", "three [[fail:400]]"]

    [request] = receiver.wait_for(1)
    secret = client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"]
    payload = request.verify(secret)
    assert request.path == "/batch" and payload["type"] == "batch.finished"
    assert payload["data"]["id"] == batch_id and payload["data"]["counts"] == finished["counts"]
    assert webhook_tasks.sweep() == 0
    time.sleep(0.5)
    assert len(receiver.requests) == 1  # once, though three jobs ended


def test_a_retry_with_the_same_keys_gives_the_same_jobs_and_charges_once(client, headers):
    jobs = [text_job(f"retry {n}", idempotency_key=f"retry-{n}") for n in range(3)]
    first = client.post(f"{API}/jobs/batch", json={"jobs": jobs}, headers=headers).get_json()
    batch_until(client, headers, first["batch"]["id"], lambda batch: batch["status"] == "finished")
    usage_before = client.get(f"{API}/usage", headers=headers).get_json()
    again = client.post(f"{API}/jobs/batch", json={"jobs": jobs}, headers=headers)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    body = again.get_json()
    assert body["batch"]["id"] == first["batch"]["id"]
    assert [item["job"]["id"] for item in body["items"]] == [item["job"]["id"] for item in first["items"]]
    assert client.get(f"{API}/usage", headers=headers).get_json() == usage_before
    listed = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert len(listed) == 3

    changed = [text_job("something else", idempotency_key="retry-0")]
    refused = client.post(f"{API}/jobs/batch", json={"jobs": changed}, headers=headers).get_json()
    assert refused["items"][0]["error"]["code"] == 422


def test_cancel_ends_the_unfinished_jobs_and_finishes_the_batch(client, headers, receiver):
    # Slow jobs: one runs on the worker, one waits for it in the broker, the rest wait
    # for the free plan's two slots.
    jobs = [text_job(f"slow {n} [[slow:2]]") for n in range(5)]
    response = client.post(
        f"{API}/jobs/batch", json={"jobs": jobs, "webhook_url": receiver.url("/canceled")}, headers=headers
    )
    body = response.get_json()
    batch_id = body["batch"]["id"]
    batch_until(client, headers, batch_id, lambda batch: batch["counts"]["running"] == 1)

    canceled = client.post(f"{API}/batches/{batch_id}/cancel", headers=headers)
    assert canceled.status_code == 202, canceled.get_json()
    assert canceled.get_json()["counts"]["queued"] == 0
    finished = batch_until(client, headers, batch_id, lambda batch: batch["status"] == "finished")
    assert finished["counts"]["canceled"] == 5  # the running one too, when its worker saw the flag
    [request] = receiver.wait_for(1)
    assert request.path == "/canceled"


def test_an_api_key_creates_and_follows_a_batch(client, headers):
    key = client.post(f"{API}/api-keys", headers=headers, json={"name": "batch"}).get_json()["key"]
    program = {"X-API-Key": key}
    body = client.post(f"{API}/jobs/batch", json={"jobs": [text_job("by key")]}, headers=program).get_json()
    batch = batch_until(client, program, body["batch"]["id"], lambda batch: batch["status"] == "finished")
    assert batch["counts"]["succeeded"] == 1
