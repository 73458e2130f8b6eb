"""Admission: a user's jobs in flight never exceed their plan's running limit; the
rest wait in order; paid plans go to the priority queue."""

import datetime as dt
import threading
import uuid

from sqlalchemy import update

from db.models import Job
from db.models.job import SUCCEEDED
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from workers import admission, job_recovery


def make_user(plan: str = "free") -> uuid.UUID:
    return rows.make_user(plan=plan, verified=False, name="U")


def make_jobs(user_id: uuid.UUID, count: int, queue: str = "ai") -> list[uuid.UUID]:
    return [rows.queued_job(user_id, input={"prompt": "x"}, queue=queue) for _ in range(count)]


class Broker:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[uuid.UUID, str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, job_id, *, queue):
        if self.fail:
            raise ConnectionError("broker down")
        with self.lock:
            self.sent.append((job_id, queue))


def test_a_free_user_has_two_jobs_in_flight_and_the_rest_wait_in_order():
    user = make_user("free")
    ids = make_jobs(user, 5)
    broker = Broker()
    assert admission.admit(user, broker).sent == ids[:2]
    assert admission.admit(user, broker).sent == []  # still full

    with session_scope() as session:
        jobs.start(session, job_id=ids[0], lease_seconds=30, max_attempts=3)
        jobs.finish(session, job_id=ids[0], outcome=jobs.Outcome(SUCCEEDED, output={"text": "ok"}))
    assert admission.admit(user, broker).sent == [ids[2]]
    assert [job_id for job_id, _ in broker.sent] == ids[:3]


def test_paid_plans_have_more_slots():
    user = make_user("pro")
    ids = make_jobs(user, 7, queue="ai_priority")
    broker = Broker()
    assert admission.admit(user, broker).sent == ids[:5]
    assert {queue for _, queue in broker.sent} == {"ai_priority"}


def test_concurrent_admissions_never_exceed_the_limit():
    user = make_user("free")
    make_jobs(user, 10)
    broker = Broker()
    threads = [threading.Thread(target=admission.admit, args=(user, broker)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(broker.sent) == 2


def test_one_users_backlog_does_not_hold_back_another_user():
    heavy, light = make_user(), make_user()
    make_jobs(heavy, 50)
    light_ids = make_jobs(light, 1)
    broker = Broker()
    admission.admit(heavy, broker)
    admission.admit(light, broker)
    assert [job_id for job_id, _ in broker.sent][2:] == light_ids  # third in the broker, not 51st


def test_a_refused_send_puts_the_jobs_back_to_wait():
    user = make_user()
    ids = make_jobs(user, 2)
    admitted = admission.admit(user, Broker(fail=True))
    assert admitted.sent == [] and admitted.failed == ids
    with session_scope() as session:
        assert jobs.count_in_flight(session, user_id=user) == 0
    assert admission.admit(user, Broker()).sent == ids  # the next try sends them


def test_the_beat_admits_waiting_jobs_and_resends_lost_messages(settings):
    user, other = make_user(), make_user()
    waiting = make_jobs(user, 3)
    sent_long_ago = make_jobs(other, 1)[0]
    with session_scope() as session:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.requeue_stale_after + 5)
        session.execute(update(Job).where(Job.id == sent_long_ago).values(dispatched_at=old))
    broker = Broker()
    assert job_recovery.resend_queued(settings, broker) == 3
    assert sorted(job_id for job_id, _ in broker.sent) == sorted([*waiting[:2], sent_long_ago])
    assert job_recovery.resend_queued(settings, Broker()) == 0  # nothing twice
