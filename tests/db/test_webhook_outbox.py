"""The webhook outbox: the trigger records one delivery in the transaction that
finishes a job, whoever finishes it; and the delivery transitions are fenced."""

import dataclasses
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from db.models import Job, WebhookAttempt, WebhookDelivery
from db.models.job import CANCELED, EXPIRED, FAILED, QUEUED, SUCCEEDED
from db.models.webhook import DELIVERED, PENDING, SENDING
from db.repositories import jobs, outbox, webhooks
from db.session import session_scope
from tests import rows
from workers import job_recovery

HOOK = "https://hooks.example.com/conveyor"


def make_job(webhook_url: str | None = HOOK, **fields) -> uuid.UUID:
    return rows.queued_job(webhook_url=webhook_url, **fields)


def deliveries(job_id) -> list[WebhookDelivery]:
    with session_scope() as session:
        return webhooks.for_job(session, job_id=job_id)


def start(job_id, max_attempts=3):
    with session_scope() as session:
        return jobs.start(session, job_id=job_id, lease_seconds=30, max_attempts=max_attempts)


def finish(job_id, status=SUCCEEDED, **kwargs) -> bool:
    with session_scope() as session:
        return jobs.finish(session, job_id=job_id, outcome=jobs.Outcome(status, **kwargs))


def test_a_finished_job_with_a_webhook_url_records_one_pending_delivery():
    job_id = make_job()
    start(job_id)
    assert finish(job_id, output={"text": "hi"})

    [delivery] = deliveries(job_id)
    with session_scope() as session:
        job = jobs.get(session, job_id=job_id)
        now = session.scalar(select(func.now()))
    assert delivery.event == "job.succeeded" and delivery.url == HOOK
    assert delivery.user_id == job.user_id and delivery.status == PENDING
    assert delivery.attempts == 0 and delivery.first_attempt_at is None
    assert delivery.next_attempt_at <= now
    assert delivery.created_at == job.finished_at  # the same transaction


def test_a_job_without_a_webhook_url_records_nothing():
    job_id = make_job(webhook_url=None)
    start(job_id)
    finish(job_id)
    assert deliveries(job_id) == []


def test_moves_between_active_states_record_nothing():
    job_id = make_job()
    start(job_id)
    rows.lapse_lease(job_id)
    with session_scope() as session:
        assert jobs.requeue_lost(session, job_id=job_id)
    start(job_id)
    assert deliveries(job_id) == []


def test_a_job_canceled_while_queued_records_job_canceled():
    job_id = make_job()
    with session_scope() as session:
        assert jobs.cancel_queued(session, job_id=job_id)
    [delivery] = deliveries(job_id)
    assert delivery.event == "job.canceled"


def test_an_expired_job_records_job_expired():
    job_id = make_job(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert job_recovery.expire_overdue() >= 1
    [delivery] = deliveries(job_id)
    assert delivery.event == "job.expired"


def test_a_job_failed_by_the_reaper_records_job_failed(settings):
    job_id = make_job()
    start(job_id, max_attempts=1)
    rows.lapse_lease(job_id)
    one_attempt = dataclasses.replace(settings, job_max_attempts=1)
    assert job_recovery.reap_lapsed_leases(one_attempt, send=lambda *a, **k: None) == (0, 1)
    [delivery] = deliveries(job_id)
    assert delivery.event == "job.failed"


def test_the_same_terminal_job_never_gets_two_deliveries():
    job_id = make_job()
    start(job_id)
    assert finish(job_id)
    assert not finish(job_id, status=FAILED)  # a late outcome is refused…
    with pytest.raises(DBAPIError), session_scope() as session:  # …and so is a direct write
        session.execute(update(Job).where(Job.id == job_id).values(status=CANCELED))
    with session_scope() as session:  # a no-op status write does not fire it again
        session.execute(update(Job).where(Job.id == job_id).values(status=SUCCEEDED))
    assert len(deliveries(job_id)) == 1


def test_a_delivery_already_there_does_not_block_finishing_the_job():
    job_id = make_job()
    with session_scope() as session:
        job = jobs.get(session, job_id=job_id)
        session.add(WebhookDelivery(job_id=job_id, user_id=job.user_id, event="job.succeeded", url=HOOK))
    start(job_id)
    assert finish(job_id)  # ON CONFLICT DO NOTHING
    assert len(deliveries(job_id)) == 1


def test_a_rolled_back_finish_records_no_delivery():
    job_id = make_job()
    with session_scope() as session:
        assert jobs.cancel_queued(session, job_id=job_id)
        session.rollback()
    assert deliveries(job_id) == []
    with session_scope() as session:
        assert jobs.get(session, job_id=job_id).status == QUEUED


def test_every_terminal_status_is_an_event():
    for status in (SUCCEEDED, FAILED, CANCELED, EXPIRED):
        job_id = make_job()
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == job_id).values(status=status))
        assert [d.event for d in deliveries(job_id)] == [f"job.{status}"]


# ---------------------------------------------------------------- transitions


def pending_delivery() -> uuid.UUID:
    job_id = make_job()
    with session_scope() as session:
        assert jobs.cancel_queued(session, job_id=job_id)
    return deliveries(job_id)[0].id


def claim(delivery_id, hold=30):
    with session_scope() as session:
        return outbox.claim(session, table=webhooks.TABLE, row_id=delivery_id, hold_seconds=hold)


def test_a_delivery_is_claimed_once_and_the_claim_is_its_attempt_number():
    delivery_id = pending_delivery()
    first = claim(delivery_id)
    assert first.status == SENDING and first.attempts == 1 and first.first_attempt_at is not None
    assert claim(delivery_id) is None  # held


def test_an_outcome_from_a_claim_that_lapsed_is_dropped():
    delivery_id = pending_delivery()
    claim(delivery_id)
    with session_scope() as session:  # the worker stalls past its hold; the sweep takes it back
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(locked_until=text("now() - interval '1 s'"))
        )
        assert outbox.release_lapsed(session, table=webhooks.TABLE, max_age=86400) == 1
    assert claim(delivery_id).attempts == 2
    with session_scope() as session:
        assert outbox.record(session, table=webhooks.TABLE, row_id=delivery_id, attempt=2, status=DELIVERED)
        # The stalled worker comes back with attempt 1's outcome: refused.
        assert not outbox.record(
            session, table=webhooks.TABLE, row_id=delivery_id, attempt=1, status=PENDING, retry_in=10
        )
    with session_scope() as session:
        delivery = webhooks.get(session, delivery_id=delivery_id)
        log = session.scalars(select(WebhookAttempt.attempt).where(WebhookAttempt.delivery_id == delivery_id))
        assert delivery.status == DELIVERED and sorted(log) == [1, 2]
        assert delivery.attempt_log[0].error == webhooks.LOST
