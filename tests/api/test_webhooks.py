"""webhook_url on submit (SSRF refused), the delivery log and the signing secret."""

import dataclasses
import uuid

import pytest
from sqlalchemy import text, update

from db.models import WebhookDelivery
from db.session import session_scope
from tests.helpers import API, register, submit
from workers.webhooks import delivery


@pytest.fixture
def headers(client):
    return register(client)[0]


@pytest.fixture
def strict_client(settings):
    """An app with no allow-listed hosts, as in production."""
    from api import create_app

    return create_app(dataclasses.replace(settings, webhook_allowed_hosts=())).test_client()


@pytest.mark.parametrize(
    ("url", "kind", "address"),
    [
        ("http://127.0.0.1:8000/hook", "a loopback address", "127.0.0.1"),
        ("https://10.0.0.1/hook", "a private address", "10.0.0.1"),
        ("https://172.16.0.1/hook", "a private address", "172.16.0.1"),
        ("https://192.168.1.1/hook", "a private address", "192.168.1.1"),
        ("http://169.254.169.254/latest/meta-data/", "the cloud metadata address", "169.254.169.254"),
        ("http://[::1]:8080/hook", "a loopback address", "::1"),
        ("http://localhost:8000/hook", "a loopback address", "127.0.0.1"),  # a name that resolves inside
    ],
)
def test_a_webhook_url_that_resolves_inside_is_422(strict_client, url, kind, address):
    headers, _ = register(strict_client)
    response = submit(strict_client, headers, webhook_url=url)
    assert response.status_code == 422
    body = response.get_json()
    message = f"webhook_url resolves to {kind} ({address}); use a public https URL."
    assert body["message"] == message and body["errors"]["json"]["webhook_url"] == [message]
    assert strict_client.get(f"{API}/jobs", headers=headers).get_json()["items"] == []


def test_plain_http_is_refused_in_production(settings):
    from api import create_app

    production = create_app(dataclasses.replace(settings, env="production")).test_client()
    headers, _ = register(production)
    response = submit(production, headers, webhook_url="http://localhost/hook")
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["webhook_url"] == ["webhook_url must use https."]
    assert submit(production, headers, webhook_url="https://localhost/hook").status_code == 202


def test_a_webhook_url_that_is_not_a_url_is_422(client, headers):
    response = submit(client, headers, webhook_url="not a url")
    assert response.status_code == 422 and "webhook_url" in response.get_json()["errors"]["json"]


def test_a_canceled_job_shows_its_pending_delivery_in_the_log(client, headers):
    job_id = submit(client, headers, webhook_url="http://127.0.0.1:9/hook").get_json()["id"]
    assert client.get(f"{API}/jobs/{job_id}/webhook-deliveries", headers=headers).get_json() == {"items": []}
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).status_code == 202

    [item] = client.get(f"{API}/jobs/{job_id}/webhook-deliveries", headers=headers).get_json()["items"]
    assert item["event"] == "job.canceled" and item["url"] == "http://127.0.0.1:9/hook"
    assert item["status"] == "pending" and item["attempts"] == 0 and item["attempts_log"] == []
    assert item["next_attempt_at"] and item["delivered_at"] is None
    assert item["last_status_code"] is None and item["last_error"] is None
    uuid.UUID(item["id"])


def test_the_log_lists_every_attempt(client, headers, receiver):
    job_id = submit(client, headers, webhook_url=receiver.url()).get_json()["id"]
    client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    log = f"{API}/jobs/{job_id}/webhook-deliveries"
    delivery_id = uuid.UUID(client.get(log, headers=headers).get_json()["items"][0]["id"])
    receiver.answer(500)
    assert delivery.deliver(delivery_id) == "pending"
    with session_scope() as session:  # the retry is due now
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=text("now() - interval '1 s'"))
        )
    assert delivery.deliver(delivery_id) == "delivered"

    [item] = client.get(log, headers=headers).get_json()["items"]
    assert item["status"] == "delivered" and item["attempts"] == 2 and item["delivered_at"]
    assert item["next_attempt_at"] is None and item["last_status_code"] == 200
    assert [(a["attempt"], a["status_code"], a["error"]) for a in item["attempts_log"]] == [
        (1, 500, "HTTP 500"),
        (2, 200, None),
    ]
    assert all(a["at"] and a["duration_ms"] >= 0 for a in item["attempts_log"])


def test_another_users_delivery_log_is_404(client, headers):
    job_id = submit(client, headers, webhook_url="http://127.0.0.1:9/hook").get_json()["id"]
    client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    other, _ = register(client)
    response = client.get(f"{API}/jobs/{job_id}/webhook-deliveries", headers=other)
    assert response.status_code == 404 and response.get_json()["message"] == "No job with this id."
    missing = client.get(f"{API}/jobs/{uuid.uuid4()}/webhook-deliveries", headers=headers)
    assert missing.status_code == 404
    assert client.get(f"{API}/jobs/{job_id}/webhook-deliveries").status_code == 401


def test_the_secret_is_made_once_and_rotated_on_request(client, headers):
    secret = client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"]
    assert secret.startswith("whsec_")
    assert client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"] == secret

    rotated = client.post(f"{API}/users/me/webhook-secret/rotate", headers=headers)
    assert rotated.status_code == 200
    new = rotated.get_json()["secret"]
    assert new.startswith("whsec_") and new != secret
    assert client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"] == new

    other, _ = register(client)
    assert client.get(f"{API}/users/me/webhook-secret", headers=other).get_json()["secret"] not in (
        secret,
        new,
    )
    assert "webhook_secret" not in client.get(f"{API}/users/me", headers=headers).get_json()
    assert client.get(f"{API}/users/me/webhook-secret").status_code == 401
    assert client.post(f"{API}/users/me/webhook-secret/rotate").status_code == 401
