"""The email outbox callers add to: what it stores, once per event, and only on commit."""

import uuid

import pytest
from sqlalchemy import func, select

from db.models import EmailOutbox
from db.models.email import PENDING
from db.session import session_scope
from tests.workers.mail.emails import SAMPLES, queue, row
from workers.mail import outbox


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
