"""Job state transitions: compare-and-set, terminal is final, leases and the reaper."""

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from db.models import Job
from db.models.job import CANCELED, EXPIRED, FAILED, QUEUED, RUNNING, SUCCEEDED
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from workers import job_recovery


def status_of(job_id):
    with session_scope() as session:
        return jobs.get(session, job_id=job_id)


def lapse_lease(job_id):
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_until=text("now() - interval '1 second'"))
        )


def start(job_id, max_attempts=3):
    with session_scope() as session:
        return jobs.start(session, job_id=job_id, lease_seconds=30, max_attempts=max_attempts)


def test_start_takes_a_queued_job_once():
    job_id = rows.queued_job()
    first = start(job_id)
    assert first.status == RUNNING and first.attempt == 1 and first.lease_until and first.started_at
    assert start(job_id) is None  # a duplicate delivery while the lease is live does nothing


def test_a_duplicate_delivery_takes_over_only_after_the_lease_lapses():
    job_id = rows.queued_job()
    started_at = start(job_id).started_at
    lapse_lease(job_id)
    again = start(job_id)
    assert again.attempt == 2 and again.started_at == started_at


def test_a_job_whose_worker_died_too_often_fails_worker_lost():
    job_id = rows.queued_job()
    for _ in range(2):
        start(job_id, max_attempts=2)
        lapse_lease(job_id)
    assert start(job_id, max_attempts=2) is None
    job = status_of(job_id)
    assert job.status == FAILED and job.error_code == "worker_lost" and job.finished_at


def test_finish_happens_once_and_a_late_writer_loses():
    job_id = rows.queued_job()
    start(job_id)
    with session_scope() as session:
        usage = jobs.Usage(input_tokens=10, output_tokens=20, cost_micros=14)
        assert jobs.finish(
            session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED, output={"text": "a"}, usage=usage)
        )
        assert not jobs.finish(
            session, job_id=job_id, outcome=jobs.Outcome(FAILED, error_code="timeout", error_message="x")
        )
    job = status_of(job_id)
    assert job.status == SUCCEEDED and job.output == {"text": "a"} and job.error_code is None
    assert (job.input_tokens, job.output_tokens, job.cost_micros) == (10, 20, 14)


def test_the_database_refuses_to_change_a_terminal_status():
    job_id = rows.queued_job()
    with session_scope() as session:
        jobs.cancel_queued(session, job_id=job_id)
    with pytest.raises(DBAPIError, match="cannot become"), session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=QUEUED))
    assert status_of(job_id).status == CANCELED


def test_a_queued_job_past_its_deadline_expires_instead_of_starting():
    job_id = rows.queued_job()
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(expires_at=text("now() - interval '1 second'"))
        )
    assert start(job_id) is None
    job = status_of(job_id)
    assert job.status == EXPIRED and job.started_at is None


def test_the_reaper_requeues_a_lapsed_job_and_fails_it_when_out_of_attempts(settings):
    sent = []
    job_id = rows.queued_job()
    start(job_id)
    lapse_lease(job_id)

    assert job_recovery.reap_lapsed_leases(settings, lambda job_id, **kw: sent.append(job_id)) == (1, 0)
    assert status_of(job_id).status == QUEUED and sent == [job_id]
    assert job_recovery.reap_lapsed_leases(settings, lambda job_id, **kw: sent.append(job_id)) == (0, 0)

    for _ in range(settings.job_max_attempts):
        start(job_id)
        lapse_lease(job_id)
    job_recovery.reap_lapsed_leases(settings, lambda job_id, **kw: None)
    job = status_of(job_id)
    assert job.status == FAILED and job.error_code == "worker_lost"


def test_expire_overdue_only_touches_queued_jobs_past_their_deadline():
    overdue = rows.queued_job()
    fresh = rows.queued_job()
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == overdue).values(expires_at=text("now() - interval '1 minute'"))
        )
    assert job_recovery.expire_overdue() == 1
    assert status_of(overdue).status == EXPIRED and status_of(fresh).status == QUEUED
