"""The email templates: each renders a subject, a text and an HTML part from its context."""

import pytest

from tests.workers.mail.emails import REPORT, SAMPLES
from workers.mail import rendering

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
