"""How the OpenAI provider fails and retries, through the real openai SDK against the fake
OpenAI server: which errors are retried, after what wait, and what the caller is told."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.workers.providers.calls import ask, make_settings, sent, unique
from workers.providers.base import (
    CONTENT_FILTERED,
    INVALID_REQUEST,
    PROVIDER_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    ProviderError,
)
from workers.providers.openai_provider import MALFORMED, OpenAIProvider, parse_retry_after


def test_rate_limit_is_retried_after_the_wait_the_provider_asked_for(fake_openai, provider, sleep):
    content = unique("busy [[fail:429:1]]")

    completion = provider.complete(ask(content))

    assert completion.text == "Echo: " + content
    assert len(sent(fake_openai, content)) == 2
    # Retry-After: 1 beats the 0.01 s backoff; the cap (provider_backoff_max) keeps the test quick.
    assert sleep.waits == [0.05]


def test_rate_limit_that_persists_fails_after_max_attempts(fake_openai, provider, sleep):
    content = unique("busy [[fail:429]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert caught.value.code == RATE_LIMITED
    assert caught.value.transient
    assert caught.value.retry_after == 1.0
    assert len(sent(fake_openai, content)) == 3
    assert len(sleep.waits) == 2


def test_out_of_quota_is_not_retried(fake_openai, provider):
    content = unique("[[fail:quota]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, False)
    assert caught.value.message == "The AI provider account is out of quota"
    assert len(sent(fake_openai, content)) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_until_the_provider_recovers(fake_openai, provider, sleep, status):
    content = unique(f"[[fail:{status}:2]]")

    completion = provider.complete(ask(content))

    assert completion.text == "Echo: " + content
    assert len(sent(fake_openai, content)) == 3
    assert len(sleep.waits) == 2
    assert all(0 <= wait <= 0.05 for wait in sleep.waits)


def test_calls_at_once_each_count_their_own_attempts(fake_openai, provider):
    """One retry policy serves a provider's calls: each call's attempts are its own."""
    failing = [unique(f"[[fail:500:2]] [[slow:0.05]] at once {n}") for n in range(4)]
    refused = unique("[[fail:500]] [[slow:0.05]] at once, never recovering")

    with ThreadPoolExecutor(5) as threads:
        calls = [threads.submit(provider.complete, ask(content)) for content in [*failing, refused]]
        answers = [call.result() for call in calls[:-1]]
        with pytest.raises(ProviderError):
            calls[-1].result()

    assert [answer.text for answer in answers] == ["Echo: " + content for content in failing]
    assert [len(sent(fake_openai, content)) for content in failing] == [3, 3, 3, 3]
    assert len(sent(fake_openai, refused)) == 3


def test_server_error_that_persists_is_a_transient_provider_error(fake_openai, provider):
    content = unique("[[fail:500]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert "HTTP 500" in caught.value.message
    assert len(sent(fake_openai, content)) == 3


def test_bad_request_is_invalid_request_without_retry(fake_openai, provider):
    content = unique("[[fail:400]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (INVALID_REQUEST, False)
    assert caught.value.message == "The AI provider rejected the request: Invalid request (fake server)"
    assert len(sent(fake_openai, content)) == 1


def test_content_policy_rejection_is_content_filtered(fake_openai, provider):
    content = unique("[[fail:content_filter]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (CONTENT_FILTERED, False)
    assert len(sent(fake_openai, content)) == 1


def test_rejected_credentials_are_reported_without_the_key(fake_openai, provider):
    content = unique("[[fail:401]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, False)
    assert "credentials" in caught.value.message
    assert "test-key" not in str(caught.value)
    assert len(sent(fake_openai, content)) == 1


def test_a_provider_that_hangs_times_out(fake_openai):
    provider = OpenAIProvider(make_settings(fake_openai, openai_timeout=0.5, provider_max_attempts=1))
    content = unique("[[hang]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (TIMEOUT, True)
    assert len(sent(fake_openai, content)) == 1


def test_a_hang_is_retried_as_a_timeout(fake_openai, sleep):
    provider = OpenAIProvider(make_settings(fake_openai, openai_timeout=0.3), sleep=sleep)
    content = unique("[[hang:1]]")

    completion = provider.complete(ask(content))

    assert completion.text == "Echo: " + content
    assert len(sent(fake_openai, content)) == 2


def test_malformed_stream_is_a_provider_error(fake_openai, provider):
    content = unique("[[malformed]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert caught.value.partial is None
    assert len(sent(fake_openai, content)) == 3


def test_chunk_of_the_wrong_shape_is_a_provider_error(fake_openai, provider):
    content = unique("[[wrong-shape]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert caught.value.message == MALFORMED
    assert len(sent(fake_openai, content)) == 3


def test_malformed_stream_before_any_text_is_retried(fake_openai, provider):
    content = unique("[[malformed:1]]")

    assert provider.complete(ask(content)).text == "Echo: " + content
    assert len(sent(fake_openai, content)) == 2


def test_failure_after_text_was_delivered_is_not_retried(fake_openai, provider):
    content = unique("[[cut]] a long enough reply to be cut in the middle")
    deltas: list[str] = []

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content), deltas.append)

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert deltas and caught.value.partial is not None
    assert caught.value.partial.text == "".join(deltas)
    assert len(sent(fake_openai, content)) == 1


def test_unreachable_provider_is_a_transient_provider_error():
    with FakeOpenAI() as gone:
        base_url = gone.base_url
    settings = dataclasses.replace(make_settings(gone), openai_base_url=base_url, provider_max_attempts=1)

    with pytest.raises(ProviderError) as caught:
        OpenAIProvider(settings).complete(ask("anyone there?"))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)


def test_retries_are_logged_with_code_and_attempt(fake_openai, provider, caplog):
    content = unique("[[fail:503:1]]")

    provider.complete(ask(content))

    [record] = [r for r in caplog.records if r.name == "workers.providers.openai_provider"]
    assert record.levelname == "WARNING"
    assert "code=provider_error" in record.getMessage() and "attempt=1" in record.getMessage()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(httpx2.Headers(headers)) == expected


def test_parse_retry_after_date_in_the_future():
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))

    assert 25 <= parse_retry_after(httpx2.Headers({"retry-after": when})) <= 31


def test_an_error_event_after_text_fails_the_call_with_the_text_so_far(fake_openai, provider):
    content = unique("[[stream-error:500]] a reply the provider gives up on")
    deltas: list[str] = []

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content), deltas.append)

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert caught.value.message == "The AI provider failed while answering"
    assert deltas and caught.value.partial.text == "".join(deltas)
    assert len(sent(fake_openai, content)) == 1  # text reached the client: not sent twice


def test_a_content_policy_error_event_is_content_filtered(fake_openai, provider):
    content = unique("[[stream-error:content_filter]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (CONTENT_FILTERED, False)
    assert len(sent(fake_openai, content)) == 1
