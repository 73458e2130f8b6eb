"""Two beats, as two hosts started from the same Procfile would run them: one sends the
schedule, the other stands by, and takes over when the first dies.

No worker runs: the beat's messages stay in the broker's `maintenance` list, where each
sweep's sends can be counted and, from their `expires` (the send time plus the entry's
expiry), timed.
"""

import itertools
import json
import os
from datetime import datetime

import pytest
from redis import Redis

from tests.fakes.services import celery_beat, wait_until

pytestmark = pytest.mark.e2e

REAP = "conveyor.maintenance.reap_leases"
TTL = 3


@pytest.fixture
def broker(settings):
    redis = Redis.from_url(settings.celery_broker_url, decode_responses=True)
    redis.delete("maintenance")
    yield redis
    redis.delete("maintenance")


@pytest.fixture
def beats(tmp_path):
    env = {**os.environ, "MAINTENANCE_INTERVAL": "1", "BEAT_LOCK_TTL": str(TTL)}
    started = []

    def start(name: str):
        beat = celery_beat(env, tmp_path / f"{name}.log", tmp_path / f"{name}-schedule")
        started.append(beat)
        wait_until(lambda: "leads" in beat.log() or "stands by" in beat.log(), 30, message=f"{name} to start")
        return beat

    yield start
    for beat in started:
        beat.stop()


def sends(broker: Redis, task: str) -> list[datetime]:
    """When each queued message of `task` was sent (its expiry less the entry's 10 s)."""
    found = []
    for raw in broker.lrange("maintenance", 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == task:
            found.append(datetime.fromisoformat(headers["expires"]))
    return sorted(found)


def sent_lines(beat) -> int:
    return beat.log().count("Sending due task reap-lapsed-leases")


def test_a_second_beat_sends_nothing_until_the_first_dies_then_takes_over(broker, beats):
    first = beats("first")
    second = beats("second")
    leader, standby = (first, second) if "leads" in first.log() else (second, first)
    assert "stands by" in standby.log()

    wait_until(lambda: len(sends(broker, REAP)) >= 5, 20, message="five reaper ticks")
    assert sent_lines(standby) == 0
    times = sends(broker, REAP)
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert min(gaps) > 0.8, gaps  # once per (one-second) interval, never twice
    assert len(times) == sent_lines(leader)

    leader.kill_all()  # no clean stop: the lock is left to expire
    sent_before = len(sends(broker, REAP))
    wait_until(lambda: "leads" in standby.log(), TTL + 3, message="the standby to take the lead")
    wait_until(lambda: sent_lines(standby) >= 2, 10, message="the new leader to send")
    assert len(sends(broker, REAP)) == sent_before + sent_lines(standby)


def test_a_beat_stopped_cleanly_hands_over_at_once(broker, beats):
    first = beats("first")
    second = beats("second")
    leader, standby = (first, second) if "leads" in first.log() else (second, first)
    assert leader.stop() == 0
    # Well before the TTL: the stopped beat released the lock.
    wait_until(lambda: "leads" in standby.log(), TTL / 3 + 1.5, message="the standby to take the lead")
