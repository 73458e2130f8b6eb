"""The beat's leader lock, two schedulers in one process: the one that holds the lock
leads, the other stands by, and a leader whose lock was taken over stops sending.
(Two real beat processes: tests/e2e/test_beat_leader.py.)"""

import time

import pytest

from db.redis_client import get_redis
from workers.beat_leader import LOCK_NAME, LeaderScheduler
from workers.celery_app import app


@pytest.fixture
def scheduler(tmp_path):
    made = []

    def make(name: str) -> LeaderScheduler:
        beat = LeaderScheduler(app=app, schedule_filename=str(tmp_path / f"{name}-schedule"), lock_ttl=3)
        made.append(beat)
        return beat

    yield make
    for beat in made:
        beat.close()


def holder() -> str | None:
    return get_redis().get(LOCK_NAME)


def test_one_leads_the_other_stands_by_until_the_lock_is_free(scheduler):
    first, second = scheduler("first"), scheduler("second")
    first.tick()
    assert first.leading and holder() is not None
    assert second.tick() == second.check_every and not second.leading

    first.close()  # a clean stop hands the lock back
    assert holder() is None
    second.tick()
    assert second.leading


def test_a_leader_whose_lock_another_took_steps_down(scheduler):
    first, second = scheduler("first"), scheduler("second")
    first.tick()
    get_redis().delete(LOCK_NAME)  # as if first stalled past the TTL and its lock expired
    second.tick()
    assert second.leading

    time.sleep(first.check_every)  # its next renewal is due
    assert first.tick() == first.check_every
    assert not first.leading and second.leading
    first.close()
    assert holder() is not None  # stepping down left the new leader's lock alone
