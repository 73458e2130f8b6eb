"""The process's lease monitor: cancel flags, lease renewals, one thread for all jobs."""

import datetime as dt
import threading
import time
import uuid

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text, update

import workers.lease
from db.models.job import SUCCEEDED, Job
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from workers import cancellation, job_stream
from workers.lease import Lease, LeaseLost, Monitor
from workers.providers import interrupts
from workers.providers.base import Canceled, Completion


def running_job(lease_seconds: int = 60) -> uuid.UUID:
    job_id = rows.queued_job()
    with session_scope() as session:
        assert jobs.start(session, job_id=job_id, lease_seconds=lease_seconds, max_attempts=3) is not None
    return job_id


def lease_for(job_id: uuid.UUID, *, lease_seconds: int = 60, expected_chars: int = 100) -> Lease:
    lease = Lease(job_id, lease_seconds=lease_seconds, expected_chars=expected_chars)
    lease.renew_at = time.monotonic() + lease.renew_every  # as entering it does
    return lease


def lease_left(job_id: uuid.UUID) -> float:
    with session_scope() as session:
        job = jobs.get(session, job_id=job_id)
        return (job.lease_until - dt.datetime.now(dt.UTC)).total_seconds()


def test_one_round_sees_the_cancel_flag_of_each_job_it_holds():
    leases = [lease_for(running_job()) for _ in range(3)]
    cancellation.request(get_redis(), leases[1].job_id)
    Monitor().tick(leases, time.monotonic())
    leases[0].check()
    leases[2].check()
    with pytest.raises(Canceled):
        leases[1].check()
    # A call waiting for its first token is not checking: it is interrupted instead.
    assert [lease.interrupt.interrupted for lease in leases] == [False, True, False]


def test_a_due_lease_is_renewed_with_the_progress_which_is_published():
    job_id = running_job(lease_seconds=3)
    lease = lease_for(job_id, lease_seconds=3, expected_chars=100)
    lease.chars = 40
    assert lease_left(job_id) < 3.5
    Monitor().tick([lease], time.monotonic())  # not due yet: renewal every lease / 3 (at least 1 s)
    assert job_stream.read(get_redis(), job_id) == []
    later = lease.renew_at + 0.01
    Monitor().tick([lease], later)
    with session_scope() as session:
        assert jobs.get(session, job_id=job_id).progress == 40
    assert [(event.type, event.data) for event in job_stream.read(get_redis(), job_id)] == [
        (job_stream.PROGRESS, {"progress": 40})
    ]
    assert lease.renew_at == pytest.approx(later + 1.0)
    lease.check()  # still ours


def test_a_job_finished_elsewhere_is_no_longer_ours():
    job_id = running_job()
    lease = lease_for(job_id)
    with session_scope() as session:
        assert jobs.finish(
            session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED, output={"text": "by another"})
        )
    Monitor().tick([lease], lease.renew_at)
    with pytest.raises(LeaseLost):
        lease.check()
    assert lease.interrupt.interrupted


def test_a_cancel_recorded_only_on_the_row_is_seen_at_the_next_renewal():
    job_id = running_job()
    lease = lease_for(job_id)
    with session_scope() as session:
        assert jobs.request_cancel(session, job_id=job_id)  # no Redis flag
    Monitor().tick([lease], time.monotonic())
    lease.check()
    Monitor().tick([lease], lease.renew_at)
    with pytest.raises(Canceled):
        lease.check()
    assert lease.interrupt.interrupted


def test_leases_are_renewed_while_redis_is_down(monkeypatch):
    job_id = running_job()
    lease = lease_for(job_id)
    with session_scope() as session:  # about to lapse
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_until=text("now() + interval '1 s'"))
        )
    down = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))  # refused at once
    monkeypatch.setattr(workers.lease, "get_redis", lambda: down)
    Monitor().tick([lease], lease.renew_at)  # the flags and the progress event fail (logged)
    assert lease_left(job_id) > 30  # renewed for another 60 s all the same
    lease.check()


def test_the_process_watches_all_its_running_jobs_with_one_thread():
    job_ids = [running_job() for _ in range(20)]
    threads_before = threading.active_count()
    leases = [Lease(job_id, lease_seconds=60, expected_chars=100) for job_id in job_ids]
    for lease in leases:
        lease.__enter__()
    try:
        assert threading.active_count() <= threads_before + 1
        cancellation.request(get_redis(), job_ids[7])
        deadline = time.monotonic() + 5
        while not leases[7].cancel_requested and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(Canceled):
            leases[7].check()
        for lease in leases[:7] + leases[8:]:
            lease.check()
    finally:
        for lease in reversed(leases):  # as nested `with` blocks would
            lease.__exit__(None, None, None)
    assert workers.lease._monitor().held() == []
    assert interrupts.current.get() is None


def test_a_lease_makes_its_interrupt_current_while_it_is_held():
    assert interrupts.current.get() is None
    with Lease(running_job(), lease_seconds=60, expected_chars=100) as lease:
        assert interrupts.current.get() is lease.interrupt
    assert interrupts.current.get() is None


def test_a_call_interrupted_because_the_lease_was_lost_ends_lease_lost():
    lease = Lease(running_job(), lease_seconds=60, expected_chars=100)
    with pytest.raises(LeaseLost), lease:
        lease.lose_lease()
        raise Canceled(Completion(text="", model=""))  # what the interrupted provider raises
