"""The generation task's own duties: what happens at the hard time limit."""

import uuid

from billiard.einfo import ExceptionInfo
from celery.exceptions import TimeLimitExceeded

from db.repositories import jobs
from db.session import session_scope
from tasks.generation import run_generation
from tests import rows
from workers import metrics


def running_job() -> uuid.UUID:
    return rows.running_job(input={"prompt": "x"})


def stop_at_hard_limit(job_id: uuid.UUID, limit: int) -> None:
    try:
        raise TimeLimitExceeded(limit)
    except TimeLimitExceeded as exc:
        # What Celery's main process calls after it killed the child at the hard limit.
        run_generation.on_failure(exc, str(job_id), (str(job_id),), {}, ExceptionInfo())


def timeouts_counted() -> float:
    """conveyor_jobs_finished_total for a text job ended `timeout`, as a scrape of this
    process's metrics reads it."""
    labels = {"tool": "text", "status": "failed", "code": "timeout"}
    return metrics.registry().get_sample_value("conveyor_jobs_finished_total", labels) or 0.0


def test_the_hard_time_limit_ends_the_job_timeout_and_releases_the_lease(settings):
    job_id = running_job()
    stop_at_hard_limit(job_id, settings.job_hard_time_limit)
    with session_scope() as session:
        job = jobs.get(session, job_id=job_id)
    assert job.status == "failed" and job.error_code == "timeout"
    assert job.error_message == f"The job was stopped at its {settings.job_hard_time_limit} s hard limit."
    assert job.lease_until is None


def durations_observed() -> tuple[float, float]:
    """conveyor_job_duration_seconds' count and sum for failed text jobs."""
    labels = {"tool": "text", "status": "failed"}
    read = metrics.registry().get_sample_value
    return (read("conveyor_job_duration_seconds_count", labels) or 0.0), (
        read("conveyor_job_duration_seconds_sum", labels) or 0.0
    )


def test_a_job_stopped_at_the_hard_limit_is_counted_finished_once(settings):
    # The pool process that would have counted it is dead: the main process counts it.
    before, (count, total) = timeouts_counted(), durations_observed()
    job_id = running_job()
    stop_at_hard_limit(job_id, settings.job_hard_time_limit)
    assert timeouts_counted() == before + 1
    # ... with the delivery's duration, which is the hard limit's.
    assert durations_observed() == (count + 1, total + settings.job_hard_time_limit)

    stop_at_hard_limit(job_id, settings.job_hard_time_limit)  # the job is already final
    assert timeouts_counted() == before + 1


def test_a_job_already_final_at_the_hard_limit_is_not_counted_again(settings):
    job_id = running_job()
    with session_scope() as session:  # canceled (and counted) by whoever ended it
        assert jobs.finish(session, job_id=job_id, outcome=jobs.Outcome("canceled", error_code="canceled"))
    before = timeouts_counted()
    stop_at_hard_limit(job_id, settings.job_hard_time_limit)
    assert timeouts_counted() == before
    with session_scope() as session:
        assert jobs.get(session, job_id=job_id).status == "canceled"


def test_other_failures_leave_the_outcome_the_pipeline_recorded():
    job_id = running_job()
    try:
        raise ValueError("boom")
    except ValueError as exc:
        run_generation.on_failure(exc, str(job_id), (str(job_id),), {}, ExceptionInfo())
    with session_scope() as session:
        assert jobs.get(session, job_id=job_id).status == "running"
