"""Emails in tests: a sample context for each template, queued as a caller would, and
read back from the outbox or from the message sent."""

import uuid

from sqlalchemy import func, update

from db.models import EmailOutbox
from db.repositories import email_outbox
from db.session import session_scope
from workers.mail import outbox

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
