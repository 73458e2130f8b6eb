"""Operations with a real (in-process) Celery worker: metrics move as jobs run,
/ready sees the worker's heartbeat, and an admin's retry runs to the end."""

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from db.models import User
from db.session import session_scope
from tests.fakes.services import wait_until
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import API, register, submit, wait_for

pytestmark = pytest.mark.e2e


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get(f"{API}/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def headers(client, celery_worker):
    return register(client)[0]


def test_metrics_count_a_job_from_submit_to_webhook(client, headers):
    receiver = WebhookReceiver().start()
    try:
        before = scrape(client)
        job_id = submit(client, headers, input={"prompt": "count me"}, webhook_url=receiver.url()).get_json()[
            "id"
        ]
        job = wait_for(client, headers, job_id)
        receiver.wait_for(1)
        wait_until(
            lambda: (
                value(scrape(client), "conveyor_webhook_deliveries_total", outcome="delivered")
                > value(before, "conveyor_webhook_deliveries_total", outcome="delivered")
            ),
            10,
            message="the webhook delivery to be counted",
        )
    finally:
        receiver.stop()
    after = scrape(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert job["status"] == "succeeded"
    assert grew("conveyor_jobs_submitted_total", tool="text", queue="ai") == 1
    assert grew("conveyor_jobs_finished_total", tool="text", status="succeeded", code="") == 1
    assert grew("conveyor_job_duration_seconds_count", tool="text", status="succeeded") == 1
    assert grew("conveyor_job_queue_wait_seconds_count", tool="text", queue="ai") == 1
    model = job["model"]
    assert (
        grew("conveyor_provider_request_duration_seconds_count", provider="openai", model=model, outcome="ok")
        == 1
    )
    assert grew("conveyor_tokens_total", model=model, kind="output") == job["usage"]["output_tokens"] > 0
    assert grew("conveyor_tokens_total", model=model, kind="input") == job["usage"]["input_tokens"] > 0
    assert grew("conveyor_webhook_deliveries_total", outcome="delivered") == 1
    assert grew("conveyor_http_requests_total", method="POST", route="/api/v1/jobs", status="202") == 1
    for queue in ("ai_priority", "ai", "default", "email", "exports"):
        assert ("conveyor_queue_depth", frozenset({("queue", queue)})) in after


def test_metrics_count_provider_errors_by_code_and_failed_jobs(client, headers, settings):
    before = scrape(client)
    job_id = submit(client, headers, input={"prompt": "always down [[fail:500]]"}).get_json()["id"]
    job = wait_for(client, headers, job_id)
    after = scrape(client)
    assert job["status"] == "failed" and job["error"]["code"] == "provider_error"
    errors = (
        "conveyor_provider_errors_total",
        {"provider": "openai", "code": "provider_error", "http_status": "500"},
    )
    assert value(after, errors[0], **errors[1]) - value(before, errors[0], **errors[1]) == (
        settings.provider_max_attempts
    )
    finished = {"tool": "text", "status": "failed", "code": "provider_error"}
    assert (
        value(after, "conveyor_jobs_finished_total", **finished)
        - value(before, "conveyor_jobs_finished_total", **finished)
        == 1
    )


def test_ready_once_the_workers_heartbeat_is_in(client, headers):
    # The table clean-up before each test wipes heartbeats too; the worker's next beat restores it.
    wait_until(lambda: client.get(f"{API}/ready").status_code == 200, 15, message="ready")
    assert client.get(f"{API}/ready").get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "workers": "ok"},
    }
    gauges = scrape(client)
    assert value(gauges, "conveyor_queue_workers", queue="ai") == 1
    assert value(gauges, "conveyor_queue_workers", queue="exports") == 1


def test_an_admins_retry_of_a_failed_job_runs_and_links_back(client, headers):
    admin, body = register(client, email="ops@example.com")
    with session_scope() as session:
        session.execute(update(User).where(User.id == uuid.UUID(body["user"]["id"])).values(role="admin"))
    # The fake provider refuses this prompt once (400: not retried), then answers it.
    job_id = submit(client, headers, input={"prompt": "second time lucky [[fail:400:1]]"}).get_json()["id"]
    assert wait_for(client, headers, job_id)["status"] == "failed"

    response = client.post(f"{API}/admin/jobs/{job_id}/retry", headers=admin)
    assert response.status_code == 202
    retry_id = response.get_json()["id"]
    retried = wait_for(client, headers, retry_id)
    assert retried["status"] == "succeeded" and retried["retry_of"] == job_id
    assert retried["output"]["text"].startswith("Echo: second time lucky")
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()["status"] == "failed"
    [entry] = client.get(f"{API}/admin/audit-log", headers=admin).get_json()["items"]
    assert entry["details"]["new_job_id"] == retry_id
