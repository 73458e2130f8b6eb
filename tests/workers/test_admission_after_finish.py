"""A finished job admits its owner's next waiting job, and only its owner's: the
shortcut that skips admission when nothing waits must not strand anyone."""

import uuid

from db.models.job import SUCCEEDED
from db.repositories import jobs
from db.session import session_scope
from tests.workers.test_scheduling import Broker, make_jobs, make_user
from workers import pipeline, scheduling


def _finish(job_id) -> None:
    with session_scope() as session:
        jobs.start(session, job_id=job_id, lease_seconds=30, max_attempts=3)
        jobs.finish(session, job_id=job_id, status=SUCCEEDED, output={"text": "ok"})


def test_nothing_is_sent_when_the_owner_has_nothing_waiting():
    owner, other = make_user("free"), make_user("free")
    mine = make_jobs(owner, 2)
    theirs = make_jobs(other, 3)
    broker = Broker()
    assert scheduling.admit(owner, broker).sent == mine
    assert scheduling.admit(other, broker).sent == theirs[:2]  # the third waits

    _finish(mine[0])
    assert scheduling.admit_after(mine[0], broker).sent == []  # another user's waiting job stays put
    _finish(theirs[0])
    assert scheduling.admit_after(theirs[0], broker).sent == [theirs[2]]


def test_a_job_submitted_while_the_slot_was_taken_is_sent_when_it_frees():
    owner = make_user("free")
    first = make_jobs(owner, 2)
    broker = Broker()
    scheduling.admit(owner, broker)
    late = make_jobs(owner, 1)  # waits: both slots are taken
    assert scheduling.admit(owner, broker).sent == []

    _finish(first[1])
    assert scheduling.admit_after(first[1], broker).sent == late
    assert scheduling.admit_after(first[1], broker).sent == []  # a second call finds nothing more


def test_an_unknown_job_admits_nothing():
    assert scheduling.admit_after(uuid.uuid4(), Broker()).sent == []


def test_a_finished_run_names_its_owner_only_when_they_have_a_job_waiting(settings, fake_openai):
    owner = make_user("free")
    first = make_jobs(owner, 2)
    broker = Broker()
    scheduling.admit(owner, broker)  # both slots taken
    finished = pipeline.run_job(first[0], settings=settings)
    assert finished.status == SUCCEEDED and finished.owner_waiting is None  # nothing waits

    late = make_jobs(owner, 1)  # waits for a slot
    finished = pipeline.run_job(first[1], settings=settings)
    assert finished.status == SUCCEEDED and finished.owner_waiting == owner
    assert scheduling.admit(finished.owner_waiting, broker).sent == late
