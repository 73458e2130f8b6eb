"""A user's submits race their own jobs finishing: the submit locks the user for
admission while a finishing job settles the quota and writes ledger rows that refer
to the user. Neither may wait on the other in a circle (Postgres would end one with
a deadlock error: a 503 for the client, or a retried outcome for the worker)."""

import threading
import uuid

from sqlalchemy import select

from db.models import Job
from db.models.job import QUEUED, SUCCEEDED
from db.repositories import jobs, usage
from db.session import autocommit_scope, session_scope
from tests.helpers import register, submit


def finish_queued_jobs(user_id: uuid.UUID, stop: threading.Event, errors: list) -> None:
    """What workers do to the user's jobs, as fast as they can: take one, record its outcome."""
    while not stop.is_set():
        try:
            with session_scope() as session:
                ids = session.scalars(
                    select(Job.id).where(Job.user_id == user_id, Job.status == QUEUED)
                ).all()
            for job_id in ids:
                with session_scope() as session:
                    job = jobs.start(session, job_id=job_id, lease_seconds=60, max_attempts=3)
                    attempt = job.attempt if job else None
                if attempt is None:
                    continue
                call = usage.Call(model="gpt-4o-mini", input_tokens=10, output_tokens=5, cost_micros=3)
                with autocommit_scope() as session:  # as workers.pipeline records an outcome
                    jobs.finish(
                        session,
                        job_id=job_id,
                        outcome=jobs.Outcome(
                            SUCCEEDED,
                            output={"text": "ok"},
                            usage=jobs.Usage(10, 5, 3),
                            ledger=usage.Attempt(job_id, attempt, user_id, "text", [call]),
                            billable=True,
                        ),
                    )
        except Exception as error:  # reported by the test
            errors.append(error)
            return


def test_submits_and_finishing_jobs_of_the_same_user_never_deadlock(client):
    headers, body = register(client)
    user_id = uuid.UUID(body["user"]["id"])
    stop, errors = threading.Event(), []
    worker = threading.Thread(target=finish_queued_jobs, args=(user_id, stop, errors))
    worker.start()
    try:
        statuses = [submit(client, headers).status_code for _ in range(40)]
    finally:
        stop.set()
        worker.join(timeout=30)
    assert errors == []
    assert statuses == [202] * 40
