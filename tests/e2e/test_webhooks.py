"""Submit with a webhook_url → a real Celery worker runs the job and delivers the
webhook → a local receiver checks the signature, as a customer's server would."""

from urllib.parse import urlsplit

import pytest

from tasks import webhooks as webhook_tasks
from tests.helpers import API, register, submit, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def headers(client, celery_worker, receiver):
    receiver.reset()
    return register(client)[0]


def test_a_finished_job_sends_one_signed_webhook_with_the_job(client, headers, receiver):
    response = submit(client, headers, input={"prompt": "Ring when done."}, webhook_url=receiver.url())
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    job = wait_for(client, headers, job_id)
    assert job["status"] == "succeeded"

    [request] = receiver.wait_for(1)
    secret = client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"]
    payload = request.verify(secret)  # raises unless signed with this user's secret
    assert payload["type"] == "job.succeeded"
    shown = client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()
    # The job as GET shows it; its stream URL is the one handed out when the job finished
    # (the same in every attempt's body), and it opens without a header.
    assert {**payload["data"], "urls": None} == {**shown, "urls": None}
    urls = payload["data"]["urls"]
    assert (urls["get"], urls["cancel"]) == (shown["urls"]["get"], shown["urls"]["cancel"])
    stream = urlsplit(urls["stream"])
    replay = client.get(f"{stream.path}?{stream.query}")
    assert replay.status_code == 200 and b"event: done" in replay.get_data()
    assert payload["data"]["output"] == {"text": "Echo: Ring when done."}

    log = client.get(f"{API}/jobs/{job_id}/webhook-deliveries", headers=headers).get_json()["items"]
    assert [(item["status"], item["attempts"]) for item in log] == [("delivered", 1)]
    assert request.headers["webhook-id"] == log[0]["id"]
    assert webhook_tasks.sweep() == 0  # nothing left to send
    assert len(receiver.requests) == 1


def test_a_failed_job_sends_job_failed(client, headers, receiver):
    job_id = submit(
        client, headers, input={"prompt": "Hello [[fail:400]]"}, webhook_url=receiver.url("/failed")
    ).get_json()["id"]
    assert wait_for(client, headers, job_id)["status"] == "failed"
    [request] = receiver.wait_for(1)
    secret = client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"]
    payload = request.verify(secret)
    assert request.path == "/failed" and payload["type"] == "job.failed"
    assert payload["data"]["error"]["code"] == "invalid_request"
