"""The circuit breaker in Redis: opened by failures in a window, skipped while open, then
one caller at a time tries the model (half-open); a success closes it."""

from __future__ import annotations

from db.redis_client import get_redis
from tests.fakes.services import wait_until
from workers.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, tripped_models


def breaker(**overrides: int) -> Breaker:
    return Breaker(get_redis(), **{"failures": 2, "window": 60, "cooldown": 1, **overrides})


def test_failures_in_the_window_open_it_and_a_success_closes_it():
    first, second = breaker(), breaker()  # two workers, one Redis
    first.failed("openai", "m")
    assert first.admit("openai", "m") == CLOSED
    second.failed("openai", "m")
    assert first.admit("openai", "m") == OPEN and second.admit("openai", "m") == OPEN
    assert tripped_models(get_redis()) == [("openai", "m", OPEN)]
    assert breaker().admit("openai", "other") == CLOSED  # per model

    wait_until(lambda: first.state("openai", "m") == HALF_OPEN, timeout=5)
    assert first.admit("openai", "m") == HALF_OPEN  # this caller tries it...
    assert second.admit("openai", "m") == OPEN  # ...and nobody else meanwhile
    first.succeeded("openai", "m")
    assert second.admit("openai", "m") == CLOSED
    assert tripped_models(get_redis()) == []


def test_a_failed_trial_opens_it_again_and_old_failures_expire():
    trial = breaker(failures=1)
    trial.failed("openai", "m")
    wait_until(lambda: trial.admit("openai", "m") == HALF_OPEN, timeout=5)
    trial.failed("openai", "m")
    assert trial.state("openai", "m") == OPEN

    slow = breaker(window=1)
    slow.failed("openai", "n")
    # Past the window the first failure no longer counts.
    wait_until(lambda: not get_redis().exists("conveyor:breaker:failures:openai|n"), timeout=5)
    slow.failed("openai", "n")
    assert slow.state("openai", "n") == CLOSED
