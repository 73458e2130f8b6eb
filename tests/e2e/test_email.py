"""Submit with notify_email → a real Celery worker runs the job and sends one
job_finished email over real SMTP (aiosmtpd), as the owner would receive it."""

import dataclasses
import uuid

import pytest

from db.repositories import email_outbox
from db.session import session_scope
from tasks import email as email_tasks
from tests import rows
from tests.fakes.services import wait_until
from tests.helpers import API, register, submit, wait_for
from workers.mail import delivery, outbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def account(client, celery_worker, smtp, settings, monkeypatch):
    """A new user, with the worker's email going to the test SMTP server."""
    smtp.reset()
    mail = dataclasses.replace(settings, mail_url=smtp.url, public_base_url="http://conveyor.test")
    monkeypatch.setattr(delivery, "get_settings", lambda: mail)
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    headers, body = register(client, email=email, name="Owner")
    return headers, body["user"]


JOB_MAIL = "Your text job"  # registering also sends a verification email: these tests ignore it


def job_emails(job_id) -> list:
    with session_scope() as session:
        found = email_outbox.by_dedupe_key(session, dedupe_key=outbox.job_finished_key(job_id))
        return [found] if found else []


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def test_a_job_that_asked_for_it_sends_one_email_when_it_succeeds(client, account, smtp):
    headers, user = account
    response = submit(client, headers, input={"prompt": "Mail me."}, notify_email=True)
    assert response.status_code == 202
    job = response.get_json()
    assert job["notify_email"] is True
    assert wait_for(client, headers, job["id"])["status"] == "succeeded"

    [message] = smtp.wait_for(1, subject=JOB_MAIL)
    assert message["To"] == user["email"]
    assert message["Subject"] == "Your text job succeeded"
    link = f"http://conveyor.test/api/v1/jobs/{job['id']}"
    assert "Hi Owner," in text_of(message) and link in text_of(message)
    assert f'href="{link}"' in html_of(message)

    # The server has the message a moment before the worker records it as sent.
    row = wait_until(lambda: next((r for r in job_emails(job["id"]) if r.status == "sent"), None), timeout=10)
    assert row.attempts == 1
    assert email_tasks.sweep() == 0  # nothing left to send
    assert len(smtp.received(JOB_MAIL)) == 1


def test_a_failed_job_says_why(client, account, smtp):
    headers, _ = account
    job_id = submit(client, headers, input={"prompt": "Hello [[fail:400]]"}, notify_email=True).get_json()[
        "id"
    ]
    assert wait_for(client, headers, job_id)["status"] == "failed"
    [message] = smtp.wait_for(1, subject=JOB_MAIL)
    assert message["Subject"] == "Your text job failed"
    assert "invalid_request" in text_of(message)


def test_a_job_canceled_while_queued_sends_one_email(client, account, smtp):
    headers, user = account
    # A job waiting its turn (its owner's slots are full), so the worker has not taken it.
    job_id = rows.queued_job(uuid.UUID(user["id"]), input={"prompt": "never mind"}, notify_email=True)
    response = client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 202 and response.get_json()["status"] == "canceled"
    assert (
        client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).status_code == 202
    )  # again: no more mail

    [message] = smtp.wait_for(1, subject=JOB_MAIL)
    assert message["To"] == user["email"] and message["Subject"] == "Your text job canceled"
    assert email_tasks.sweep() == 0
    assert len(smtp.received(JOB_MAIL)) == 1


def test_a_job_that_did_not_ask_sends_no_email(client, account, smtp):
    headers, _ = account
    job = submit(client, headers, input={"prompt": "Quietly."}).get_json()
    assert job["notify_email"] is False
    assert wait_for(client, headers, job["id"])["status"] == "succeeded"
    assert job_emails(job["id"]) == []
    assert smtp.received(JOB_MAIL) == []


def test_notify_email_must_be_a_boolean(client, account):
    headers, _ = account
    response = submit(client, headers, notify_email="please")
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["notify_email"] == ["Not a valid boolean."]
