"""A finished job admits its owner's next waiting job, and only its owner's: the
shortcut that skips admission when nothing waits must not strand anyone."""

import uuid

from db.models.job import SUCCEEDED
from db.repositories import jobs
from db.session import session_scope
from tests.workers.test_admission import Broker, make_jobs, make_user
from workers import admission, pipeline


def _finish(job_id) -> uuid.UUID | None:
    """Start and record the job's outcome as a worker does; the owner it names for admission."""
    with session_scope() as session:
        jobs.start(session, job_id=job_id, lease_seconds=30, max_attempts=3)
    ended = pipeline._record(job_id, jobs.Outcome(SUCCEEDED, output={"text": "ok"}))
    assert ended.done
    return ended.owner_waiting


def test_nothing_is_sent_when_the_owner_has_nothing_waiting():
    owner, other = make_user("free"), make_user("free")
    mine = make_jobs(owner, 2)
    theirs = make_jobs(other, 3)
    broker = Broker()
    assert admission.admit(owner, broker).sent == mine
    assert admission.admit(other, broker).sent == theirs[:2]  # the third waits

    assert _finish(mine[0]) is None  # another user's waiting job stays put
    assert _finish(theirs[0]) == other
    assert admission.admit(other, broker).sent == [theirs[2]]


def test_a_job_submitted_while_the_slot_was_taken_is_sent_when_it_frees():
    owner = make_user("free")
    first = make_jobs(owner, 2)
    broker = Broker()
    admission.admit(owner, broker)
    late = make_jobs(owner, 1)  # waits: both slots are taken
    assert admission.admit(owner, broker).sent == []

    assert _finish(first[1]) == owner
    assert admission.admit(owner, broker).sent == late
    assert admission.admit(owner, broker).sent == []  # a second admission finds nothing more


def test_an_outcome_that_does_not_stand_names_no_owner():
    owner = make_user("free")
    first = make_jobs(owner, 2)
    broker = Broker()
    admission.admit(owner, broker)
    make_jobs(owner, 1)  # waits for a slot
    assert _finish(first[0]) == owner
    again = pipeline._record(first[0], jobs.Outcome(SUCCEEDED, output={"text": "twice"}))  # a late duplicate
    assert (again.done, again.owner_waiting) == (False, None)
    unknown = pipeline._record(uuid.uuid4(), jobs.Outcome(SUCCEEDED, output={"text": "ok"}))
    assert (unknown.done, unknown.owner_waiting) == (False, None)


def test_a_finished_run_names_its_owner_only_when_they_have_a_job_waiting(settings, fake_openai):
    owner = make_user("free")
    first = make_jobs(owner, 2)
    broker = Broker()
    admission.admit(owner, broker)  # both slots taken
    finished = pipeline.run_job(first[0], settings=settings)
    assert finished.status == SUCCEEDED and finished.owner_waiting is None  # nothing waits

    late = make_jobs(owner, 1)  # waits for a slot
    finished = pipeline.run_job(first[1], settings=settings)
    assert finished.status == SUCCEEDED and finished.owner_waiting == owner
    assert admission.admit(finished.owner_waiting, broker).sent == late
