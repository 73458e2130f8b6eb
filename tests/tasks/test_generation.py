"""The generation task's own duties: what happens at the hard time limit."""

import datetime as dt
import uuid

from billiard.einfo import ExceptionInfo
from celery.exceptions import TimeLimitExceeded

from db.repositories import jobs, users
from db.session import session_scope
from tasks.generation import run_generation


def running_job() -> uuid.UUID:
    with session_scope() as session:
        user = users.create(session, email=f"{uuid.uuid4().hex}@x.io", password_hash="x", name="T")
        job = jobs.create(
            session,
            user_id=user.id,
            tool="text",
            input={"prompt": "x"},
            model="gpt-4o-mini",
            queue="ai",
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        jobs.start(session, job_id=job.id, lease_seconds=60, max_attempts=3)
        return job.id


def test_the_hard_time_limit_ends_the_job_timeout_and_releases_the_lease(settings):
    job_id = running_job()
    try:
        raise TimeLimitExceeded(settings.job_hard_time_limit)
    except TimeLimitExceeded as exc:
        # What Celery's main process calls after it killed the child at the hard limit.
        run_generation.on_failure(exc, str(job_id), (str(job_id),), {}, ExceptionInfo())
    with session_scope() as session:
        job = jobs.get(session, job_id=job_id)
    assert job.status == "failed" and job.error_code == "timeout"
    assert job.error_message == f"The job was stopped at its {settings.job_hard_time_limit} s hard limit."
    assert job.lease_until is None


def test_other_failures_leave_the_outcome_the_pipeline_recorded():
    job_id = running_job()
    try:
        raise ValueError("boom")
    except ValueError as exc:
        run_generation.on_failure(exc, str(job_id), (str(job_id),), {}, ExceptionInfo())
    with session_scope() as session:
        assert jobs.get(session, job_id=job_id).status == "running"
