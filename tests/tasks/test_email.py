"""The email tasks: messages go to the `email` queue once per due email; the beat's
sweep sends the due ones and takes back those of dead workers; and every way a job
that asked for it can finish queues exactly one `job_finished` email."""

import dataclasses
import datetime as dt
import uuid

import pytest
from sqlalchemy import text, update

import celeryconfig
from db.models import EmailOutbox, Job
from db.models.email import FAILED, PENDING, SENDING, SENT
from db.models.job import CANCELED, EXPIRED, SUCCEEDED
from db.repositories import email_outbox, jobs, users
from db.repositories import outbox as outbox_rows
from db.session import session_scope
from tasks import email as email_tasks
from tests import rows
from workers import job_recovery
from workers.mail import delivery, outbox


@pytest.fixture
def mail_settings(settings, smtp, monkeypatch):
    """The task functions read the settings themselves: point them at the SMTP server."""
    smtp.reset()
    replaced = dataclasses.replace(settings, mail_url=smtp.url, public_base_url="http://conveyor.test")
    monkeypatch.setattr(delivery, "get_settings", lambda: replaced)
    return replaced


def queued_email(to="ada@example.com", dedupe_key=None) -> uuid.UUID:
    with session_scope() as session:
        return outbox.enqueue(
            session,
            to=to,
            template="verify_email",
            context={"name": "Ada", "link": "https://app.example.com/verify/1"},
            dedupe_key=dedupe_key or f"test:{uuid.uuid4()}",
        )


def row(outbox_id) -> EmailOutbox:
    with session_scope() as session:
        return email_outbox.get(session, outbox_id=outbox_id)


def messages_for(outbox_id) -> dict[str, int]:
    from celery import current_app

    with current_app.connection_for_write() as connection:
        redis = connection.default_channel.client
        return {
            queue: sum(str(outbox_id).encode() in message for message in redis.lrange(queue, 0, -1))
            for queue in ("default", "email")
        }


def lapse_hold(outbox_id) -> None:
    with session_scope() as session:
        session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == outbox_id)
            .values(locked_until=text("now() - interval '1 s'"))
        )


# ---------------------------------------------------------------- queueing and the sweep


def test_send_soon_sends_one_message_to_the_email_queue():
    outbox_id = queued_email()
    email_tasks.send_soon([outbox_id])
    email_tasks.send_soon([outbox_id])  # a fresh message is already out
    assert email_tasks.sweep() == 0
    assert messages_for(outbox_id) == {"default": 0, "email": 1}


def test_the_sweep_sends_a_message_for_each_due_email_and_a_second_run_sends_none():
    first, second = queued_email(), queued_email()
    assert email_tasks.sweep() == 2
    assert email_tasks.sweep() == 0
    assert messages_for(first) == messages_for(second) == {"default": 0, "email": 1}


def test_the_sweep_and_the_task_run_twice_in_a_row_send_one_email(smtp, mail_settings):
    outbox_id = queued_email()
    for _ in range(2):
        for due in delivery.sweep():
            email_tasks.send(str(due))  # what the worker runs for each message
        email_tasks.send(str(outbox_id))  # and a duplicate message
    assert len(smtp.wait_for(1)) == 1
    assert (row(outbox_id).status, row(outbox_id).attempts) == (SENT, 1)
    assert smtp.messages[0]["To"] == "ada@example.com"


def test_a_dead_workers_email_is_taken_back_by_the_sweep_and_sent_once(smtp, mail_settings):
    outbox_id = queued_email()
    with session_scope() as session:  # a worker claims it, then dies before sending
        assert (
            outbox_rows.claim(session, table=email_outbox.TABLE, row_id=outbox_id, hold_seconds=60).status
            == SENDING
        )
    assert email_tasks.sweep() == 0  # still held
    lapse_hold(outbox_id)

    assert delivery.sweep() == [outbox_id]
    stored = row(outbox_id)
    assert stored.status == PENDING and "worker stopped" in stored.last_error
    assert email_tasks.send(str(outbox_id)) == SENT
    assert row(outbox_id).attempts == 2
    assert len(smtp.wait_for(1)) == 1

    # The dead worker's late outcome (attempt 1) is refused: the claim moved on.
    with session_scope() as session:
        assert not outbox_rows.record(
            session, table=email_outbox.TABLE, row_id=outbox_id, attempt=1, status=FAILED, error="late"
        )
    assert row(outbox_id).status == SENT


def test_a_dead_workers_email_that_used_every_attempt_is_failed(mail_settings):
    outbox_id = queued_email()
    with session_scope() as session:
        session.execute(
            update(EmailOutbox).where(EmailOutbox.id == outbox_id).values(attempts=delivery.MAX_ATTEMPTS - 1)
        )
        outbox_rows.claim(session, table=email_outbox.TABLE, row_id=outbox_id, hold_seconds=60)
    lapse_hold(outbox_id)
    assert delivery.sweep() == []
    assert row(outbox_id).status == FAILED


def test_the_beat_sweeps_every_thirty_seconds_and_emails_go_to_the_email_queue():
    assert "tasks.email" in celeryconfig.imports
    schedule = {entry["task"]: entry["schedule"] for entry in celeryconfig.beat_schedule.values()}
    assert schedule["conveyor.email.sweep"] == 30.0
    router = email_tasks.send.app.amqp.router
    assert router.route({}, "conveyor.email.send")["queue"].name == "email"
    assert router.route({}, "conveyor.email.sweep")["queue"].name == "maintenance"  # as every sweep


# ---------------------------------------------------------------- job_finished, whoever finishes the job


def make_job(notify_email=True, **fields) -> uuid.UUID:
    return rows.queued_job(notify_email=notify_email, name="Grace", **fields)


def emails_for(job_id) -> list[EmailOutbox]:
    with session_scope() as session:
        found = email_outbox.by_dedupe_key(session, dedupe_key=outbox.job_finished_key(job_id))
        return [found] if found else []


def start(job_id, max_attempts=3):
    with session_scope() as session:
        return jobs.start(session, job_id=job_id, lease_seconds=30, max_attempts=max_attempts)


def test_a_job_that_succeeds_queues_one_job_finished_email_to_its_owner():
    job_id = make_job()
    start(job_id)
    with session_scope() as session:
        assert jobs.finish(session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED, output={"text": "hi"}))
        owner = users.get(session, user_id=jobs.get(session, job_id=job_id).user_id)
    [email] = emails_for(job_id)
    assert (email.template, email.to_address, email.status) == ("job_finished", owner.email, PENDING)
    assert email.context == {
        "name": "Grace",
        "job_id": str(job_id),
        "tool": "text",
        "status": "succeeded",
        "error_code": None,
        "error_message": None,
    }


def test_a_job_that_did_not_ask_queues_no_email():
    job_id = make_job(notify_email=False)
    start(job_id)
    with session_scope() as session:
        jobs.finish(session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED))
    assert emails_for(job_id) == []


def test_a_job_canceled_while_queued_queues_one_email():
    job_id = make_job()
    with session_scope() as session:
        assert jobs.cancel_queued(session, job_id=job_id)
    [email] = emails_for(job_id)
    assert email.context["status"] == CANCELED and email.context["error_code"] == "canceled"


def test_an_expired_job_queues_one_email():
    job_id = make_job(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert job_recovery.expire_overdue() >= 1
    [email] = emails_for(job_id)
    assert email.context["status"] == EXPIRED


def test_a_job_failed_by_the_reaper_queues_one_email_with_the_error(settings):
    job_id = make_job()
    start(job_id, max_attempts=1)
    rows.lapse_lease(job_id)
    one_attempt = dataclasses.replace(settings, job_max_attempts=1)
    assert job_recovery.reap_lapsed_leases(one_attempt, send=lambda *a, **k: None) == (0, 1)
    [email] = emails_for(job_id)
    assert email.context["status"] == "failed" and email.context["error_code"] == "worker_lost"
    assert "stopped 1 times" in email.context["error_message"]


def test_moving_between_active_states_queues_nothing_and_a_finished_job_is_emailed_once():
    job_id = make_job()
    start(job_id)
    rows.lapse_lease(job_id)
    with session_scope() as session:
        assert jobs.requeue_lost(session, job_id=job_id)
    start(job_id)
    assert emails_for(job_id) == []
    with session_scope() as session:
        assert jobs.finish(session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED))
        assert not jobs.finish(session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED))
        session.execute(update(Job).where(Job.id == job_id).values(status=SUCCEEDED))  # a no-op write
    assert len(emails_for(job_id)) == 1


def test_send_for_job_sends_the_finished_jobs_email_now(smtp, mail_settings):
    job_id = make_job()
    with session_scope() as session:
        jobs.cancel_queued(session, job_id=job_id)
    [email] = emails_for(job_id)
    email_tasks.send_for_job(job_id)
    email_tasks.send_for_job(job_id)
    assert messages_for(email.id) == {"default": 0, "email": 1}
    assert email_tasks.send(str(email.id)) == SENT
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "Your text job canceled"
    assert f"http://conveyor.test/api/v1/jobs/{job_id}" in message.get_body(("plain",)).get_content()
