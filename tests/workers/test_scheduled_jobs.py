"""The due-job pickup: a scheduled job is queued and sent once its run_at has come,
once however many pickups run, never before, and never expired while it waits."""

import datetime as dt
import threading
import uuid

from db.models.job import QUEUED, SCHEDULED
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from tests.workers.test_admission import Broker
from workers import job_recovery, scheduled_jobs


def scheduled(user_id: uuid.UUID, *, due_in: float, expires_in: float = 3600) -> uuid.UUID:
    now = dt.datetime.now(dt.UTC)
    return rows.queued_job(
        user_id,
        status=SCHEDULED,
        run_at=now + dt.timedelta(seconds=due_in),
        expires_at=now + dt.timedelta(seconds=expires_in),
    )


def status(job_id: uuid.UUID) -> str:
    with session_scope() as session:
        return jobs.get(session, job_id=job_id).status


def test_due_jobs_are_queued_and_sent_and_the_others_wait():
    user = rows.make_user(plan="pro", name="S")
    due = [scheduled(user, due_in=-1), scheduled(user, due_in=-2)]
    later = scheduled(user, due_in=600)
    broker = Broker()

    assert scheduled_jobs.queue_due(broker) == 2

    assert sorted(job_id for job_id, _ in broker.sent) == sorted(due)
    assert [status(job_id) for job_id in due] == [QUEUED, QUEUED]
    assert status(later) == SCHEDULED
    assert scheduled_jobs.queue_due(broker) == 0 and len(broker.sent) == 2


def test_due_jobs_wait_for_the_owners_running_limit():
    user = rows.make_user(plan="free", name="S")  # two in flight at once
    due = [scheduled(user, due_in=-3 + n) for n in range(3)]
    broker = Broker()

    scheduled_jobs.queue_due(broker)

    assert [job_id for job_id, _ in broker.sent] == due[:2]
    assert status(due[2]) == QUEUED  # waiting for a slot, as any job


def test_pickups_running_at_once_send_each_job_once():
    users = [rows.make_user(plan="business", name="S") for _ in range(4)]
    due = [scheduled(user, due_in=-1) for user in users for _ in range(5)]
    broker = Broker()
    pickups = [threading.Thread(target=scheduled_jobs.queue_due, args=(broker,)) for _ in range(4)]
    for pickup in pickups:
        pickup.start()
    for pickup in pickups:
        pickup.join()

    assert sorted(job_id for job_id, _ in broker.sent) == sorted(due)


def test_a_scheduled_job_is_not_expired_while_it_waits():
    job_id = scheduled(rows.make_user(name="S"), due_in=600, expires_in=-1)

    job_recovery.expire_overdue()

    assert status(job_id) == SCHEDULED
