"""A rate limiter shared by every worker: requests and tokens per window, per model, kept in Redis.

Built on `limits` (flask-limiter's engine) with its moving-window strategy on
Redis. Each `hit` there is one Lua script (`acquire_moving_window.lua`), and
Redis runs a script with nothing else in between, so the check and the take are
one step: two workers can never both take the last slot.

A call takes a request and then its tokens, in two such steps. If the second
fails (another worker took the tokens between our look and our take), the
request already taken stays counted until it ages out of the window: the limiter
then counts one request more than was sent. That errs on the safe side, and it
is rare because both budgets are looked at (`get_window_stats`) before taking.

Entries are stamped with each worker's own wall clock (`time.time()` inside
`limits`), so workers on several hosts need their clocks in sync (NTP), as with
flask-limiter's moving window.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from db.redis_client import KEY_PREFIX
from settings import RateLimit, Settings
from workers.providers.base import (
    INVALID_REQUEST,
    RATE_LIMITED,
    CompletionRequest,
    ProviderError,
    estimate_tokens,
)

logger = logging.getLogger(__name__)

DEFAULT = "*"
# The moving window keeps one Redis list entry per unit it counts. Token budgets are
# counted in blocks of tokens so that a list never holds more than this many entries
# (200000 tpm: blocks of 20 tokens). Costs round up and budgets down: never over.
MAX_TOKEN_ENTRIES = 10_000
MIN_WAIT = 0.02  # seconds; the shortest sleep between looks, so waiting never spins


class LocalRateLimited(ProviderError):
    """The limiter waited as long as it may; raised before any request was sent.

    A ProviderError like the provider's own 429, but the retry policy leaves it
    alone: another attempt would only wait again.
    """


@dataclass(frozen=True)
class _Cost:
    what: str  # "requests" or "tokens", for messages
    item: RateLimitItem
    model: str
    amount: int  # in the item's units

    def stats(self, strategy: MovingWindowRateLimiter) -> tuple[float, int]:
        reset, remaining = strategy.get_window_stats(self.item, self.model, self.what)
        return reset, remaining

    def hit(self, strategy: MovingWindowRateLimiter) -> bool:
        return strategy.hit(self.item, self.model, self.what, cost=self.amount)


def request_tokens(request: CompletionRequest) -> int:
    """The tokens a call may use: its estimated prompt plus all the output it may ask for."""
    prompt = sum(estimate_tokens(str(message.get("content") or "")) for message in request.messages)
    return prompt + request.max_output_tokens


class RateLimiter:
    """Requests and tokens per `window` seconds for each model, shared through Redis."""

    def __init__(
        self,
        redis_url: str,
        limits: Iterable[RateLimit],
        *,
        window: int = 60,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        key_prefix: str = KEY_PREFIX + "ratelimit",
    ) -> None:
        self.limits = {limit.model: limit for limit in limits}
        self.window = window
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        storage = RedisStorage(redis_url, key_prefix=key_prefix, socket_timeout=5, socket_connect_timeout=2)
        self._strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The limiter the settings ask for, or None when PROVIDER_RATE_LIMITS is empty."""
        if not settings.provider_rate_limits:
            return None
        return cls(
            settings.redis_url,
            settings.provider_rate_limits,
            window=settings.provider_rate_limit_window,
            max_wait=settings.provider_rate_limit_max_wait,
        )

    def limit_for(self, model: str) -> RateLimit | None:
        return self.limits.get(model) or self.limits.get(DEFAULT)

    def acquire(self, model: str, tokens: int) -> float:
        """Wait until `model` has room for one request of `tokens` tokens, take it, and
        return the seconds waited.

        Raises ProviderError `invalid_request` at once when `tokens` exceeds the whole
        budget, and LocalRateLimited (`rate_limited`, transient) when the room would
        not come within `max_wait` seconds.
        """
        costs = self._costs(model, tokens)
        if not costs:
            return 0.0
        try:
            return self._take(model, costs)
        except RedisError:
            # Fail open: the provider's own 429s (retried) still hold the line, and a
            # Redis outage also stops new work from arriving through the broker.
            logger.warning("rate limiter unreachable; calling without it: model=%s", model, exc_info=True)
            return 0.0

    def _take(self, model: str, costs: list[_Cost]) -> float:
        started = self._clock()
        deadline = started + self.max_wait
        slept = False
        while True:
            wait = self._wait_for(costs)
            if wait == 0 and all(cost.hit(self._strategy) for cost in costs):
                if not slept:
                    return 0.0
                waited = self._clock() - started
                logger.info("waited %.2fs for the local rate limit: model=%s", waited, model)
                return waited
            wait = max(wait, MIN_WAIT)
            if self._clock() + wait > deadline:
                raise LocalRateLimited(
                    RATE_LIMITED,
                    f"The local rate limit for model {model} had no room within "
                    f"{self.max_wait:g} s; try again later",
                    transient=True,
                    retry_after=wait,
                )
            self._sleep(wait)
            slept = True

    def _costs(self, model: str, tokens: int) -> list[_Cost]:
        limit = self.limit_for(model)
        if limit is None:
            return []
        costs = []
        if limit.requests is not None:
            item = RateLimitItemPerSecond(limit.requests, self.window, namespace="provider")
            costs.append(_Cost("requests", item, model, 1))
        if limit.tokens is not None:
            if tokens > limit.tokens:
                raise ProviderError(
                    INVALID_REQUEST,
                    f"The request may use about {tokens} tokens (prompt plus maximum output), more than "
                    f"the {limit.tokens} tokens {self._per_window} allowed for model {model}",
                )
            block = max(1, math.ceil(limit.tokens / MAX_TOKEN_ENTRIES))
            blocks = limit.tokens // block
            item = RateLimitItemPerSecond(blocks, self.window, namespace="provider")
            costs.append(_Cost("tokens", item, model, min(max(1, math.ceil(tokens / block)), blocks)))
        return costs

    def _wait_for(self, costs: list[_Cost]) -> float:
        """0 when every budget has room now, else a lower bound on the seconds until it may.

        The window frees its oldest entry at `reset`; a cost of several units may need
        more to go, in which case the loop simply looks again then.
        """
        wait = 0.0
        for cost in costs:
            reset, remaining = cost.stats(self._strategy)
            if remaining < cost.amount:
                wait = max(wait, reset - time.time(), MIN_WAIT)  # `limits` stamps with time.time()
        return wait

    @property
    def _per_window(self) -> str:
        return "per minute" if self.window == 60 else f"per {self.window} s"
