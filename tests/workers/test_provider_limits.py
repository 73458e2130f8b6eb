"""The rate limiter shared by workers, on the run's real Redis, and through the openai provider.

Windows here are 1-2 s so the tests are quick. Timing checks only assert what the
limiter guarantees (nothing granted before the window frees), with slack for a
busy machine; the upper bounds are generous.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import uuid
from typing import Any

import pytest
from redis import Redis

from settings import ConfigError, RateLimit, Settings
from workers.provider_limits import LocalRateLimited, RateLimiter, request_tokens
from workers.providers.base import INVALID_REQUEST, RATE_LIMITED, CompletionRequest, ProviderError
from workers.providers.openai_provider import OpenAIProvider

SLACK = 0.05  # seconds: clocks read in different places may disagree by this much


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def model(settings):
    """A model name no other test uses; its limiter keys are removed afterwards."""
    name = f"model-{uuid.uuid4().hex[:8]}"
    yield name
    redis = Redis.from_url(settings.redis_url)
    for key in redis.scan_iter(f"conveyor:*{name}*"):
        redis.delete(key)


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


def limiter(settings: Settings, *limits: RateLimit, window: int = 1, max_wait: float = 5.0, **kw: Any):
    return RateLimiter(settings.redis_url, limits, window=window, max_wait=max_wait, **kw)


# ---------------------------------------------------------------- configuration


def test_rate_limits_are_parsed_from_the_environment():
    settings = Settings.from_env(
        {
            "PROVIDER_RATE_LIMITS": "gpt-4o-mini=500rpm/200000tpm, gpt-4o=30000tpm,*=60rpm",
            "PROVIDER_RATE_LIMIT_MAX_WAIT": "12.5",
            "PROVIDER_RATE_LIMIT_WINDOW": "2",
        }
    )
    assert settings.provider_rate_limits == (
        RateLimit("gpt-4o-mini", requests=500, tokens=200000),
        RateLimit("gpt-4o", tokens=30000),
        RateLimit("*", requests=60),
    )
    assert settings.provider_rate_limit_max_wait == 12.5
    assert settings.provider_rate_limit_window == 2
    hash(settings)  # Settings are cached by value elsewhere


def test_no_rate_limits_by_default():
    settings = Settings.from_env({})
    assert settings.provider_rate_limits == ()
    assert settings.provider_rate_limit_max_wait == 60 and settings.provider_rate_limit_window == 60
    assert RateLimiter.from_settings(settings) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROVIDER_RATE_LIMITS": "gpt-4o"}, "entry 'gpt-4o' must look like model=500rpm/200000tpm"),
        ({"PROVIDER_RATE_LIMITS": "=5rpm"}, "must look like model="),
        ({"PROVIDER_RATE_LIMITS": "gpt-4o="}, "must look like model="),
        ({"PROVIDER_RATE_LIMITS": "gpt-4o=5rps"}, "'5rps' must be a whole number followed by rpm"),
        ({"PROVIDER_RATE_LIMITS": "gpt-4o=1.5rpm"}, "must be a whole number"),
        ({"PROVIDER_RATE_LIMITS": "gpt-4o=5rpm/6rpm"}, "gives rpm twice"),
        ({"PROVIDER_RATE_LIMITS": "gpt-4o=0tpm"}, "tpm must be at least 1"),
        ({"PROVIDER_RATE_LIMITS": "a=1rpm,*=2rpm,a=3rpm"}, "names model 'a' twice"),
        ({"PROVIDER_RATE_LIMIT_WINDOW": "0"}, "PROVIDER_RATE_LIMIT_WINDOW must be at least 1"),
        ({"PROVIDER_RATE_LIMIT_WINDOW": "0.5"}, "PROVIDER_RATE_LIMIT_WINDOW must be a whole number"),
        ({"PROVIDER_RATE_LIMIT_MAX_WAIT": "-1"}, "PROVIDER_RATE_LIMIT_MAX_WAIT must not be negative"),
    ],
)
def test_bad_rate_limit_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        Settings.from_env(env)


# ---------------------------------------------------------------- the limiter


def test_requests_over_the_limit_wait_for_the_window_to_free(settings, model, sleep):
    limits = limiter(settings, RateLimit(model, requests=3), window=1, sleep=sleep)
    started = time.monotonic()

    assert [limits.acquire(model, 10) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert sleep.waits == []
    waited = limits.acquire(model, 10)

    assert waited > 0 and sleep.waits
    assert time.monotonic() - started >= 1 - SLACK  # not before the first request left the window
    assert waited < 3


def test_tokens_over_the_limit_wait_for_the_window_to_free(settings, model, sleep):
    limits = limiter(settings, RateLimit(model, tokens=100), window=1, sleep=sleep)
    started = time.monotonic()

    assert limits.acquire(model, 60) == 0.0
    assert limits.acquire(model, 40) == 0.0  # exactly the budget
    waited = limits.acquire(model, 1)

    assert waited > 0
    assert time.monotonic() - started >= 1 - SLACK
    assert waited < 3


def test_waiting_longer_than_max_wait_fails_at_once_as_rate_limited(settings, model, sleep):
    limits = limiter(settings, RateLimit(model, requests=1), window=2, max_wait=0.5, sleep=sleep)
    limits.acquire(model, 1)

    with pytest.raises(LocalRateLimited) as caught:
        limits.acquire(model, 1)

    error = caught.value
    assert isinstance(error, ProviderError)
    assert error.code == RATE_LIMITED and error.transient
    assert "local rate limit" in error.message and model in error.message
    assert error.retry_after is not None and error.retry_after > 0.5
    assert sleep.waits == []  # the window could not free in time, so it did not wait for nothing


def test_a_call_bigger_than_the_whole_token_budget_is_invalid_at_once(settings, model, sleep):
    limits = limiter(settings, RateLimit(model, requests=5, tokens=1000), sleep=sleep)

    with pytest.raises(ProviderError) as caught:
        limits.acquire(model, 1001)

    assert caught.value.code == INVALID_REQUEST and not caught.value.transient
    assert "1001 tokens" in caught.value.message and "1000 tokens per 1 s" in caught.value.message
    assert sleep.waits == []
    # Nothing was taken: the whole budget is still there.
    assert limits.acquire(model, 1000) == 0.0


def test_default_limit_applies_to_each_other_model_separately(settings, model, sleep):
    other = model + "-other"
    limits = limiter(settings, RateLimit("*", requests=1), max_wait=0, sleep=sleep)

    limits.acquire(model, 1)
    limits.acquire(other, 1)  # its own budget

    with pytest.raises(LocalRateLimited):
        limits.acquire(model, 1)


def test_models_without_a_limit_are_not_limited(settings, model, sleep):
    limits = limiter(settings, RateLimit("gpt-limited", requests=1), max_wait=0, sleep=sleep)

    assert [limits.acquire(model, 10**9) for _ in range(5)] == [0.0] * 5
    assert limits.limit_for(model) is None


def test_large_token_budgets_are_counted_in_blocks_without_going_over(settings, model):
    limits = limiter(settings, RateLimit(model, tokens=200_000), max_wait=0)

    assert limits.acquire(model, 150_000) == 0.0
    assert limits.acquire(model, 49_990) == 0.0  # rounds up to 50_000 in blocks of 20
    with pytest.raises(LocalRateLimited):
        limits.acquire(model, 1)


def test_request_tokens_are_the_estimated_prompt_plus_the_maximum_output():
    request = CompletionRequest(
        model="m",
        messages=[{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 8}],
        max_output_tokens=100,
    )
    assert request_tokens(request) == 10 + 2 + 100


# ---------------------------------------------------------------- across processes

SHARED_LIMIT, SHARED_WINDOW, HAMMER_SECONDS, PROCESSES = 10, 2, 3.0, 3


def _hammer(redis_url: str, model: str, out_key: str, barrier: Any) -> None:
    """One worker process: take requests as fast as the shared limit allows, noting when."""
    limits = RateLimiter(
        redis_url, [RateLimit(model, requests=SHARED_LIMIT)], window=SHARED_WINDOW, max_wait=0.5
    )
    redis = Redis.from_url(redis_url)
    barrier.wait(timeout=30)
    until = time.time() + HAMMER_SECONDS
    while time.time() < until:
        try:
            limits.acquire(model, 1)
        except LocalRateLimited:
            time.sleep(0.005)
            continue
        redis.rpush(out_key, repr(time.time()))


def test_processes_sharing_a_limit_never_exceed_it_together(settings, model):
    out_key = f"conveyor:test-ratelimit:{model}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES + 1)
    workers = [
        context.Process(target=_hammer, args=(settings.redis_url, model, out_key, barrier))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=30)
        for worker in workers:
            worker.join(timeout=20)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    stamps = sorted(float(stamp) for stamp in Redis.from_url(settings.redis_url).lrange(out_key, 0, -1))
    # Any SHARED_LIMIT + 1 grants span at least a window. A stamp is taken just after its
    # grant, so allow a little for a process that was descheduled in between.
    spans = [stamps[i + SHARED_LIMIT] - stamps[i] for i in range(len(stamps) - SHARED_LIMIT)]
    assert min(spans, default=SHARED_WINDOW) >= SHARED_WINDOW - 0.25, stamps
    # 3 s of hammering on a 2 s window: a full window at the start and one after 2 s.
    assert 1.5 * SHARED_LIMIT <= len(stamps) <= 2 * SHARED_LIMIT, stamps


# ---------------------------------------------------------------- through the provider


def ask(model: str, content: str, max_output_tokens: int = 50) -> CompletionRequest:
    messages = [{"role": "user", "content": content}]
    return CompletionRequest(model=model, messages=messages, max_output_tokens=max_output_tokens)


def sent(fake: Any, content: str) -> list[dict[str, Any]]:
    return [body for body in list(fake.requests) if body["messages"][-1]["content"] == content]


def limited_provider(settings: Settings, sleep: SleepRecorder, *limits: RateLimit, **overrides: Any):
    settings = dataclasses.replace(
        settings, provider_rate_limits=limits, provider_rate_limit_window=1, **overrides
    )
    return OpenAIProvider(settings, sleep=sleep)


def test_provider_calls_wait_for_the_limit_and_the_wait_is_not_an_attempt(
    settings, fake_openai, model, sleep
):
    provider = limited_provider(
        settings, sleep, RateLimit(model, requests=2), provider_max_attempts=1, provider_rate_limit_max_wait=5
    )
    content = f"hello #{uuid.uuid4().hex[:8]}"
    first_text: list[float] = []
    started = time.monotonic()

    for _ in range(3):
        deltas: list[float] = []
        completion = provider.complete(
            ask(model, content), lambda _text, d=deltas: d.append(time.monotonic())
        )
        assert completion.text == "Echo: " + content
        first_text.append(deltas[0])

    assert len(sent(fake_openai, content)) == 3
    assert first_text[1] - started < 1  # the first two went at once
    assert first_text[2] - started >= 1 - SLACK  # the third waited for the window
    assert sleep.waits == []  # no retry: one attempt each was enough


def test_provider_fails_rate_limited_without_calling_or_retrying_when_the_wait_is_too_long(
    settings, fake_openai, model, sleep
):
    provider = limited_provider(settings, sleep, RateLimit(model, requests=1), provider_rate_limit_max_wait=0)
    content = f"hello #{uuid.uuid4().hex[:8]}"
    provider.complete(ask(model, content))

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(model, content))

    assert caught.value.code == RATE_LIMITED and caught.value.transient
    assert len(sent(fake_openai, content)) == 1
    assert sleep.waits == []  # the retry policy left it alone


def test_provider_refuses_a_call_bigger_than_the_token_budget(settings, fake_openai, model, sleep):
    provider = limited_provider(settings, sleep, RateLimit(model, tokens=500))
    content = f"hello #{uuid.uuid4().hex[:8]}"

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(model, content, max_output_tokens=600))

    assert caught.value.code == INVALID_REQUEST
    assert sent(fake_openai, content) == []


def test_an_unreachable_redis_lets_calls_through_rather_than_failing_jobs(caplog):
    from tests.fakes.services import free_port

    limiter = RateLimiter(
        f"redis://127.0.0.1:{free_port()}/0", (RateLimit("m", requests=1),), window=60, max_wait=1
    )
    assert limiter.acquire("m", 10) == 0.0
    assert "rate limiter unreachable" in caplog.text
