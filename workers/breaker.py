"""A circuit breaker per (provider, model), in Redis so that every worker shares it.

Closed: calls go through (a job asks once per model it may skip: one EXISTS), and each
failure that would make a job fall back is counted in a window of BREAKER_WINDOW seconds.
BREAKER_FAILURES of them open it: for BREAKER_COOLDOWN seconds jobs skip the model and
go straight to their next one. Then it
is half-open: one job (the one that wins a SET NX) tries the model while the others keep
skipping it; its success closes the breaker, its failure opens it for another cool-down.

Redis being unreachable leaves the breaker closed: it saves time, it is not worth failing
a job for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from db.redis_client import key
from settings import Settings
from workers import metrics

logger = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
PROBE_SECONDS = 120  # how long one job holds the half-open trial before another may try


@dataclass(frozen=True)
class Breaker:
    redis: Redis
    failures: int
    window: int
    cooldown: int

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Breaker:
        return cls(redis, settings.breaker_failures, settings.breaker_window, settings.breaker_cooldown)

    def admit(self, provider: str, model: str) -> str:
        """Whether a job may call the model now: CLOSED (go), HALF_OPEN (go: this job won
        the trial, and reports how it went) or OPEN (skip it). One round trip while closed."""
        try:
            if not self.redis.exists(_tripped(provider, model)):
                return CLOSED
            if self.redis.exists(_open(provider, model)):
                return OPEN
            # Cooled down: half-open, and one job at a time tries the model.
            won = self.redis.set(_probe(provider, model), 1, nx=True, ex=PROBE_SECONDS)
            return HALF_OPEN if won else OPEN
        except RedisError:
            logger.warning("breaker: Redis unavailable; %s/%s treated as closed", provider, model)
            return CLOSED

    def failed(self, provider: str, model: str) -> None:
        try:
            if self.redis.exists(_tripped(provider, model)):  # the half-open trial failed
                self._open(provider, model)
                return
            counter = _failures(provider, model)
            pipe = self.redis.pipeline()
            pipe.incr(counter)
            pipe.expire(counter, self.window, nx=True)
            count, _ = pipe.execute()
            if count >= self.failures:
                self._open(provider, model)
        except RedisError:
            logger.warning("breaker: Redis unavailable; a failure of %s/%s not counted", provider, model)

    def succeeded(self, provider: str, model: str) -> None:
        """The half-open trial answered: close the breaker. (A success while closed needs no
        word: failures count in a window, and expire with it.)"""
        try:
            pipe = self.redis.pipeline()
            pipe.delete(_tripped(provider, model))
            pipe.delete(_probe(provider, model), _failures(provider, model))
            was_tripped, _ = pipe.execute()
        except RedisError:
            return
        if was_tripped:
            metrics.breaker_changed(provider=provider, model=model, state=CLOSED)

    def state(self, provider: str, model: str) -> str:
        if not self.redis.exists(_tripped(provider, model)):
            return CLOSED
        return OPEN if self.redis.exists(_open(provider, model)) else HALF_OPEN

    def _open(self, provider: str, model: str) -> None:
        pipe = self.redis.pipeline()
        pipe.set(_open(provider, model), 1, ex=self.cooldown)
        pipe.set(_tripped(provider, model), 1)  # stays until a success closes the breaker
        pipe.delete(_probe(provider, model), _failures(provider, model))
        pipe.execute()
        metrics.breaker_changed(provider=provider, model=model, state=OPEN)
        logger.warning("breaker: %s/%s open for %s s after failures", provider, model, self.cooldown)


def tripped_models(redis: Redis) -> list[tuple[str, str, str]]:
    """(provider, model, state) of every breaker not closed, for the metrics scrape."""
    found = []
    prefix = key("breaker", "tripped", "")
    for name in redis.scan_iter(f"{prefix}*"):
        provider, _, model = name.removeprefix(prefix).partition("|")
        found.append((provider, model, OPEN if redis.exists(_open(provider, model)) else HALF_OPEN))
    return found


def _failures(provider: str, model: str) -> str:
    return key("breaker", "failures", f"{provider}|{model}")


def _open(provider: str, model: str) -> str:
    return key("breaker", "open", f"{provider}|{model}")


def _tripped(provider: str, model: str) -> str:
    return key("breaker", "tripped", f"{provider}|{model}")


def _probe(provider: str, model: str) -> str:
    return key("breaker", "probe", f"{provider}|{model}")
