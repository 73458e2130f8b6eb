"""The takes of jobs arriving together: those that come while a take's statement runs go
in the next statement, each delivery gets its own answer (a duplicate delivery in the
same batch gets none), and a statement that fails raises in each take it held without
stopping the ones after. Run here with OS threads, which a gevent worker's greenlets
stand in for."""

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from db.models.job import RUNNING
from db.repositories import jobs
from db.session import get_engine, session_scope
from tests import rows
from workers import group_take
from workers.group_take import GroupTaker


class CountingTaker(GroupTaker):
    """A taker that notes the size of each statement's batch."""

    def __init__(self) -> None:
        super().__init__(lease_seconds=60, max_attempts=3)
        self.batches: list[int] = []

    def take_all(self, batch) -> None:
        self.batches.append(len(batch))
        super().take_all(batch)


def take_in_threads(taker, job_ids) -> tuple[list, list[threading.Thread]]:
    answers = [None] * len(job_ids)

    def one(index, job_id):
        try:
            answers[index] = taker.take(job_id)
        except Exception as error:
            answers[index] = error

    threads = [threading.Thread(target=one, args=(n, job_id)) for n, job_id in enumerate(job_ids)]
    for thread in threads:
        thread.start()
    return answers, threads


def wait_for(condition, timeout=10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def status(job_id) -> str:
    with session_scope() as session:
        return jobs.get(session, job_id=job_id).status


def test_takes_that_come_while_a_statement_runs_go_in_the_next_one_each_answered_once():
    user = rows.make_user()
    first = rows.queued_job(user)
    others = [rows.queued_job(user) for _ in range(20)]
    taker = CountingTaker()
    with get_engine().connect() as blocker:  # holds the first job's row: its take waits
        blocker.execute(text("BEGIN"))
        blocker.execute(text("SELECT 1 FROM jobs WHERE id = :id FOR UPDATE"), {"id": first})
        first_answer, first_thread = take_in_threads(taker, [first])
        wait_for(lambda: taker.batches == [1])
        answers, threads = take_in_threads(taker, [*others, others[0]])  # and one delivered twice
        wait_for(lambda: taker._waiting.qsize() == len(others) + 1)
        blocker.execute(text("ROLLBACK"))
    for thread in [*first_thread, *threads]:
        thread.join(10)

    assert taker.batches == [1, len(others) + 1]  # two statements for 22 takes
    assert first_answer[0].id == first and first_answer[0].status == RUNNING
    assert [answer.id for answer in answers[: len(others)]] == others
    assert all(answer.attempt == 1 for answer in answers[: len(others)])
    assert answers[-1] is None  # the second delivery of the same job must not run it
    assert {status(job_id) for job_id in [first, *others]} == {RUNNING}


def test_a_job_that_cannot_be_taken_gets_none_and_the_others_their_rows():
    user = rows.make_user()
    finished = rows.finished_job(user)
    queued = rows.queued_job(user)
    taker = CountingTaker()
    assert taker.take(finished) is None
    assert taker.take(queued).id == queued


def test_a_failing_statement_raises_in_its_takes_and_the_next_statement_works(monkeypatch):
    job_id = rows.queued_job()
    taker = CountingTaker()
    real = jobs.start_many
    calls = []

    def down_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "start_many", down_once)
    with pytest.raises(OperationalError):
        taker.take(job_id)
    assert taker.take(job_id).id == job_id  # the taker's thread lives on


def test_outside_gevent_a_take_is_its_own_statement():
    assert not group_take.under_gevent()
    job_id = rows.queued_job()
    assert group_take.take(job_id, lease_seconds=60, max_attempts=3).id == job_id
    assert group_take.take(job_id, lease_seconds=60, max_attempts=3) is None  # held: a live lease
    assert group_take._taker is None  # no thread was started
