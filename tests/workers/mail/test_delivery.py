"""One delivery attempt, over real SMTP (aiosmtpd) or the console transport: sent once,
retried later, or failed for good."""

import dataclasses
import logging

import pytest
from sqlalchemy import func, select, update

from db.models import EmailOutbox
from db.models.email import FAILED, PENDING, SENT
from db.session import session_scope
from tests.fakes.smtp_server import SmtpServer
from tests.workers.mail.emails import make_due, parts, queue, row
from workers.mail import delivery

# ---------------------------------------------------------------- delivery over SMTP


def test_an_email_is_sent_over_smtp_with_a_text_and_an_html_part(smtp, mail_settings):
    outbox_id = queue("job_finished", to="ada@example.com")
    assert delivery.send(outbox_id, settings=mail_settings) == SENT

    [message] = smtp.wait_for(1)
    assert message["To"] == "ada@example.com"
    assert message["From"] == "Conveyor <robot@mail.test>"
    assert message["Subject"] == "Your roadmap job failed"
    assert message["Message-ID"] == f"<{outbox_id}@mail.test>"
    assert smtp.envelopes == [("robot@mail.test", ["ada@example.com"])]
    body = parts(message)
    assert set(body) == {"text/plain", "text/html"}
    link = "http://mail.test/api/v1/jobs/0b7e4c1e-1111-4222-8333-944445555666"
    assert link in body["text/plain"] and f'href="{link}"' in body["text/html"]

    stored = row(outbox_id)
    assert (stored.status, stored.attempts, stored.last_error) == (SENT, 1, None)
    assert stored.sent_at is not None
    assert delivery.send(outbox_id, settings=mail_settings) is None  # already sent: nothing happens
    assert len(smtp.messages) == 1


def test_an_email_whose_outcome_meets_a_database_restart_is_recorded_and_not_sent_again(
    smtp, mail_settings, monkeypatch
):
    # Found by the soak (soak/): Postgres restarting between the SMTP send and its record
    # left the row to be claimed again, and the email went out twice.
    from sqlalchemy.exc import OperationalError

    from db.repositories import outbox as repository

    real_record, calls = repository.record, []

    def record_across_a_restart(session, **outcome):
        calls.append(outcome["status"])
        if len(calls) == 1:
            raise OperationalError("UPDATE", {}, Exception("the database system is shutting down"))
        return real_record(session, **outcome)

    monkeypatch.setattr(repository, "record", record_across_a_restart)
    outbox_id = queue()
    assert delivery.send(outbox_id, settings=mail_settings) == SENT
    assert calls == [SENT, SENT]
    stored = row(outbox_id)
    assert (stored.status, stored.attempts) == (SENT, 1)
    make_due(outbox_id)
    assert delivery.send(outbox_id, settings=mail_settings) is None
    assert len(smtp.messages) == 1


def test_a_4xx_reply_is_retried_later_and_then_sent_once(smtp, mail_settings):
    smtp.refuse("data", "421 4.3.0 Try again later")
    outbox_id = queue()
    assert delivery.send(outbox_id, settings=mail_settings) == PENDING
    stored = row(outbox_id)
    assert stored.attempts == 1 and "421" in stored.last_error and "Try again later" in stored.last_error
    with session_scope() as session:
        wait = (stored.next_attempt_at - session.scalar(select(func.now()))).total_seconds()
    assert 20 < wait < 40  # the first backoff, 30 s with jitter
    assert delivery.send(outbox_id, settings=mail_settings) is None  # not due yet
    assert smtp.messages == []

    make_due(outbox_id)
    assert delivery.send(outbox_id, settings=mail_settings) == SENT
    assert len(smtp.wait_for(1)) == 1
    assert row(outbox_id).attempts == 2


def test_a_4xx_to_the_recipient_is_transient_too(smtp, mail_settings):
    smtp.refuse("rcpt", "450 4.2.1 Mailbox busy")
    outbox_id = queue()
    assert delivery.send(outbox_id, settings=mail_settings) == PENDING
    assert "450" in row(outbox_id).last_error


def test_a_server_that_is_down_and_then_up_gets_the_email_once(settings):
    server = SmtpServer()  # its port is chosen, nothing listens on it yet
    down = dataclasses.replace(settings, mail_url=server.url)
    outbox_id = queue()
    assert delivery.send(outbox_id, settings=down) == PENDING
    assert "could not reach 127.0.0.1" in row(outbox_id).last_error

    server.start()
    try:
        make_due(outbox_id)
        assert delivery.send(outbox_id, settings=down) == SENT
        assert len(server.wait_for(1)) == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("command", "reply"), [("rcpt", "550 5.1.1 No such user here"), ("data", "554 5.7.1 Rejected as spam")]
)
def test_a_5xx_reply_fails_the_email_at_once(smtp, mail_settings, command, reply):
    smtp.refuse(command, reply)
    outbox_id = queue()
    assert delivery.send(outbox_id, settings=mail_settings) == FAILED
    stored = row(outbox_id)
    assert stored.attempts == 1 and reply.split(" ", 1)[1] in stored.last_error
    assert stored.next_attempt_at is None
    make_due(outbox_id)
    assert delivery.send(outbox_id, settings=mail_settings) is None  # failed is final
    assert smtp.messages == []


def test_a_bad_address_fails_at_once_without_asking_the_server(smtp, mail_settings):
    outbox_id = queue(to="not an address")
    assert delivery.send(outbox_id, settings=mail_settings) == FAILED
    assert "'not an address' is not an email address" in row(outbox_id).last_error
    assert smtp.messages == []


def test_an_email_that_keeps_failing_is_given_up_after_the_last_attempt(smtp, mail_settings):
    outbox_id = queue()
    with session_scope() as session:
        session.execute(
            update(EmailOutbox).where(EmailOutbox.id == outbox_id).values(attempts=delivery.MAX_ATTEMPTS - 1)
        )
    smtp.refuse("data", "451 4.3.0 Local problem")
    assert delivery.send(outbox_id, settings=mail_settings) == FAILED
    stored = row(outbox_id)
    assert stored.attempts == delivery.MAX_ATTEMPTS
    assert f"gave up after {delivery.MAX_ATTEMPTS} attempts" in stored.last_error


def test_the_backoff_doubles_up_to_an_hour():
    assert 24 <= delivery.RETRIES.delay(1) <= 36
    assert 48 <= delivery.RETRIES.delay(2) <= 72
    assert 2880 <= delivery.RETRIES.delay(12) <= 4320


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_with_a_login(settings):
    server = SmtpServer(login=("mailer", "s3cret pass")).start()
    try:
        outbox_id = queue()
        assert delivery.send(outbox_id, settings=dataclasses.replace(settings, mail_url=server.url)) == SENT
        assert len(server.wait_for(1)) == 1

        wrong = server.url.replace("s3cret pass", "wrong")
        outbox_id = queue()
        # A configuration problem, not this email's: it waits for the fix.
        assert delivery.send(outbox_id, settings=dataclasses.replace(settings, mail_url=wrong)) == PENDING
        assert "535" in row(outbox_id).last_error
    finally:
        server.stop()


# ---------------------------------------------------------------- the console transport


def test_the_console_transport_logs_the_whole_message(settings, caplog):
    caplog.set_level(logging.INFO, logger="workers.mail.transport")
    console = dataclasses.replace(settings, mail_url="console://")
    outbox_id = queue(to="ada@example.com")
    assert delivery.send(outbox_id, settings=console) == SENT

    [record] = [r for r in caplog.records if r.name == "workers.mail.transport"]
    logged = record.getMessage()
    assert "To: ada@example.com" in logged
    assert "Subject: Confirm your email address" in logged
    text, html = logged.split("--- text/plain ---")[1].split("--- text/html ---")
    # The link is whole and readable (not wrapped or encoded), so a developer can open it.
    assert "\nhttps://app.example.com/verify/tok-123\n" in text
    assert 'href="https://app.example.com/verify/tok-123"' in html
