"""Email: the templates, the outbox callers add to, and one delivery attempt over
real SMTP (aiosmtpd) or the console transport."""

import dataclasses
import logging
import uuid

import pytest
from sqlalchemy import func, select, update

from db.models import EmailOutbox
from db.models.email import FAILED, PENDING, SENT
from db.repositories import email_outbox
from db.session import session_scope
from settings import ConfigError, Settings
from tests.fakes.smtp_server import SmtpServer
from workers.mail import delivery, outbox, rendering, transport

REPORT = {
    "date": "2026-11-21",
    "jobs_by_tool": {"text": {"succeeded": 12, "failed": 2}, "brand": {"succeeded": 3}},
    "failures_by_code": {"timeout": 1, "rate_limited": 1},
    "tokens": {"input": 48210, "output": 9120},
    "cost_micros": 1234567,
    "queue_latency_seconds": {"p50": 0.42, "p95": 3.5},
}
# One sample context per template; a new template without one fails the first test.
SAMPLES = {
    # No name in the two a stranger can cause (registering, forgot-password) to be sent.
    "verify_email": {"link": "https://app.example.com/verify/tok-123"},
    "password_reset": {
        "link": "https://app.example.com/reset/tok-456",
        "expires_in_minutes": 30,
    },
    "job_finished": {
        "name": "Ada",
        "job_id": "0b7e4c1e-1111-4222-8333-944445555666",
        "tool": "roadmap",
        "status": "failed",
        "error_code": "timeout",
        "error_message": "The provider did not answer in time.",
    },
    "export_ready": {
        "name": "Ada",
        "link": "https://files.example.com/export.zip?sig=abc",
        "expires_at": "2026-11-22T03:10:00+00:00",
    },
    "payment_failed": {"name": "Ada", "amount": "$20.00", "portal_link": "https://billing.example.com/p/1"},
    "daily_report": {"report": REPORT},
}
# What each rendering must show, in its text and its HTML part.
SHOWN = {
    "verify_email": ["https://app.example.com/verify/tok-123"],
    "password_reset": [
        "https://app.example.com/reset/tok-456",
        "30 minutes",
        "revokes every API key of the account",
    ],
    "job_finished": [
        "roadmap",
        "failed",
        "timeout",
        "The provider did not answer in time.",
        "http://mail.test/api/v1/jobs/0b7e4c1e-1111-4222-8333-944445555666",
    ],
    "export_ready": ["https://files.example.com/export.zip?sig=abc", "22 Nov 2026, 03:10 UTC"],
    "payment_failed": ["$20.00", "https://billing.example.com/p/1"],
    "daily_report": [
        "2026-11-21",
        "text",
        "failed 2",
        "succeeded 12",
        "rate_limited",
        "48210",
        "9120",
        "$1.2346",
        "p50 0.42 s",
        "p95 3.50 s",
    ],
}


@pytest.fixture(scope="module")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings, smtp):
    smtp.reset()
    return dataclasses.replace(
        settings,
        mail_url=smtp.url,
        mail_from="Conveyor <robot@mail.test>",
        public_base_url="http://mail.test",
    )


def queue(template="verify_email", to="ada@example.com", dedupe_key=None, **context):
    with session_scope() as session:
        return outbox.enqueue(
            session,
            to=to,
            template=template,
            context={**SAMPLES[template], **context},
            dedupe_key=dedupe_key or f"test:{uuid.uuid4()}",
        )


def row(outbox_id) -> EmailOutbox:
    with session_scope() as session:
        return email_outbox.get(session, outbox_id=outbox_id)


def make_due(outbox_id) -> None:
    """Time passes: the retry's backoff is over."""
    with session_scope() as session:
        session.execute(
            update(EmailOutbox).where(EmailOutbox.id == outbox_id).values(next_attempt_at=func.now())
        )


def parts(message) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


# ---------------------------------------------------------------- templates


def test_there_is_a_sample_for_every_template():
    assert set(SAMPLES) == set(rendering.TEMPLATES) == set(SHOWN)


@pytest.mark.parametrize("template", rendering.TEMPLATES)
def test_every_template_renders_a_subject_text_and_html(template, mail_settings):
    rendered = rendering.render(template, SAMPLES[template], settings=mail_settings)
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.html.lstrip().startswith("<!doctype html>")
    for shown in SHOWN[template]:
        assert shown in rendered.text, shown
        assert shown.replace("&", "&amp;") in rendered.html, shown
    if "name" in SAMPLES[template]:
        assert "Hi Ada," in rendered.text and "Hi Ada," in rendered.html


@pytest.mark.parametrize(
    ("template", "missing"),
    [(template, key) for template, sample in SAMPLES.items() for key in sample]
    + [("daily_report", f"report.{key}") for key in REPORT],
)
def test_a_missing_context_variable_fails_loudly(template, missing, mail_settings):
    context = {key: value for key, value in SAMPLES[template].items() if key != missing}
    if missing.startswith("report."):
        context = {"report": {k: v for k, v in REPORT.items() if k != missing.removeprefix("report.")}}
    with pytest.raises(rendering.MissingVariable, match=missing.rpartition(".")[2]):
        rendering.render(template, context, settings=mail_settings)


def test_the_html_is_escaped_and_the_text_is_not(mail_settings):
    context = {**SAMPLES["export_ready"], "name": "<script>alert(1)</script> & Co"}
    rendered = rendering.render("export_ready", context, settings=mail_settings)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in rendered.html
    assert "<script>" not in rendered.html
    assert "Hi <script>alert(1)</script> & Co," in rendered.text


def test_a_job_that_succeeded_shows_no_error_and_the_report_copes_with_no_jobs(mail_settings):
    context = {**SAMPLES["job_finished"], "status": "succeeded", "error_code": None, "error_message": None}
    rendered = rendering.render("job_finished", context, settings=mail_settings)
    assert rendered.subject == "Your roadmap job succeeded"
    assert "Error" not in rendered.text and "Error" not in rendered.html

    empty = {
        **REPORT,
        "jobs_by_tool": {},
        "failures_by_code": {},
        "queue_latency_seconds": {"p50": None, "p95": None},
    }
    text = rendering.render("daily_report", {"report": empty}, settings=mail_settings).text
    assert "(no jobs)" in text and "no jobs started" in text


def test_a_subject_stays_one_line_whatever_the_context_holds(mail_settings):
    context = {**SAMPLES["payment_failed"], "amount": "$5\r\nBcc: victim@example.com"}
    subject = rendering.render("payment_failed", context, settings=mail_settings).subject
    assert subject == "Your payment of $5 Bcc: victim@example.com failed"


# ---------------------------------------------------------------- the outbox


def test_enqueue_stores_a_pending_email_and_the_same_event_twice_is_queued_once():
    first = queue(dedupe_key="verify_email:token-1")
    second = queue(dedupe_key="verify_email:token-1", link="https://app.example.com/verify/other")
    assert isinstance(first, uuid.UUID) and second is None
    stored = row(first)
    assert (stored.status, stored.attempts, stored.template, stored.to_address) == (
        PENDING,
        0,
        "verify_email",
        "ada@example.com",
    )
    assert stored.context == SAMPLES["verify_email"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(EmailOutbox)) == 1


def test_enqueue_refuses_an_unknown_template_or_a_missing_variable_and_stores_nothing():
    with pytest.raises(outbox.UnknownTemplate, match="welcome_aboard"), session_scope() as session:
        outbox.enqueue(session, to="a@example.com", template="welcome_aboard", context={}, dedupe_key="k1")
    with pytest.raises(outbox.MissingVariable, match="link"), session_scope() as session:
        outbox.enqueue(
            session, to="a@example.com", template="verify_email", context={"name": "A"}, dedupe_key="k2"
        )
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(EmailOutbox)) == 0


def test_an_email_queued_in_a_transaction_that_rolls_back_is_not_queued():
    with pytest.raises(RuntimeError), session_scope() as session:
        outbox.enqueue(
            session,
            to="a@example.com",
            template="verify_email",
            context=SAMPLES["verify_email"],
            dedupe_key="k",
        )
        raise RuntimeError("the caller's work failed")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(EmailOutbox)) == 0


def test_dates_and_ids_in_a_context_are_stored_as_text():
    import datetime as dt

    when = dt.datetime(2026, 11, 22, 3, 10, tzinfo=dt.UTC)
    outbox_id = queue("export_ready", expires_at=when)
    assert row(outbox_id).context["expires_at"] == "2026-11-22T03:10:00+00:00"
    with pytest.raises(TypeError, match="set"), session_scope() as session:
        outbox.enqueue(
            session,
            to="a@example.com",
            template="export_ready",
            context={**SAMPLES["export_ready"], "link": {1}},
            dedupe_key="k",
        )


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


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("console://", transport.ConsoleTransport),
        ("smtp://mailpit:1025", transport.SmtpTransport(host="mailpit", port=1025)),
        ("smtp://localhost", transport.SmtpTransport(host="localhost", port=25)),
        (
            "smtp://user%40x.com:p%40ss@smtp.example.com:587?starttls=1",
            transport.SmtpTransport(
                host="smtp.example.com", port=587, username="user@x.com", password="p@ss", starttls=True
            ),
        ),
        (
            "smtps://u:p@smtp.example.com",
            transport.SmtpTransport(
                host="smtp.example.com", port=465, username="u", password="p", use_ssl=True
            ),
        ),
    ],
)
def test_mail_url_chooses_the_transport(url, expected):
    chosen = transport.from_url(url)
    if isinstance(expected, type):
        assert isinstance(chosen, expected)
    else:
        assert chosen == expected


def test_mail_settings_come_from_the_environment():
    settings = Settings.from_env(
        {
            "MAIL_URL": "smtp://mailpit:1025",
            "MAIL_FROM": "Ops <ops@example.com>",
            "PUBLIC_BASE_URL": "https://x.io/",
        }
    )
    assert (settings.mail_url, settings.mail_from, settings.public_base_url) == (
        "smtp://mailpit:1025",
        "Ops <ops@example.com>",
        "https://x.io",
    )
    defaults = Settings.from_env({})
    assert (defaults.mail_url, defaults.mail_from, defaults.public_base_url) == (
        "console://",
        "Conveyor <no-reply@localhost>",
        "http://localhost:8000",
    )
    with pytest.raises(ConfigError, match="MAIL_URL must be console://"):
        Settings.from_env({"MAIL_URL": "sendmail://localhost"})
