"""The providers, through the real openai SDK against the fake OpenAI server."""

from __future__ import annotations

import contextvars
import dataclasses
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import jsonschema
import pytest

from settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.services import wait_until
from workers.providers import get_provider, interrupts
from workers.providers.base import (
    CONTENT_FILTERED,
    INVALID_REQUEST,
    PROVIDER_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    Canceled,
    Completion,
    CompletionRequest,
    ProviderError,
)
from workers.providers.offline import OfflineProvider
from workers.providers.openai_provider import MALFORMED, OpenAIProvider, parse_retry_after

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "steps": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "weeks": {"type": "integer", "minimum": 1}},
                "required": ["name", "weeks"],
            },
        },
        "level": {"enum": ["beginner", "expert"]},
        "code": {"type": "string", "maxLength": 4},
    },
    "required": ["title", "steps", "level", "code"],
    "additionalProperties": False,
}


class SleepRecorder:
    """Stands in for time.sleep so tests see the waits the retry policy chose."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def make_settings(server: FakeOpenAI | str, **overrides: Any) -> Settings:
    """Settings for a provider reaching `server`: a fake, or a base URL."""
    settings = Settings(
        ai_provider="openai",
        openai_api_key="test-key",
        openai_base_url=server if isinstance(server, str) else server.base_url,
        openai_timeout=2.0,
        provider_max_attempts=3,
        provider_backoff_base=0.01,
        provider_backoff_max=0.05,
    )
    return dataclasses.replace(settings, **overrides)


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def provider(fake_openai: FakeOpenAI, sleep: SleepRecorder) -> OpenAIProvider:
    return OpenAIProvider(make_settings(fake_openai), sleep=sleep)


def unique(text: str) -> str:
    """A message no other test sends, so request counts and marker counters stay per test."""
    return f"{text} #{uuid.uuid4().hex[:8]}"


def ask(content: str, **fields: Any) -> CompletionRequest:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": content}]
    return CompletionRequest(model="gpt-test", messages=messages, max_output_tokens=200, **fields)


def sent(fake: FakeOpenAI, content: str) -> list[dict[str, Any]]:
    return [body for body in list(fake.requests) if body["messages"][-1]["content"] == content]


def test_streams_text_deltas_in_order_and_counts_usage(fake_openai, provider):
    content = unique("tell me about the sea and its many moods")
    deltas: list[str] = []

    completion = provider.complete(ask(content), deltas.append)

    assert completion.text == "Echo: " + content
    assert len(deltas) > 1 and "".join(deltas) == completion.text
    assert completion.model == "gpt-test"
    assert completion.finish_reason == "stop"
    assert completion.input_tokens == len("You are terse." + content) // 4
    assert completion.output_tokens == len(completion.text) // 4
    [body] = sent(fake_openai, content)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 200
    assert body["temperature"] == 0.7
    assert "response_format" not in body


def test_json_schema_request_returns_valid_json(fake_openai, provider):
    content = unique("plan my roadmap")

    completion = provider.complete(ask(content, json_schema=SCHEMA, schema_name="roadmap"))

    jsonschema.validate(json.loads(completion.text), SCHEMA)
    [body] = sent(fake_openai, content)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "roadmap", "schema": SCHEMA, "strict": False},
    }


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


def test_finish_reason_content_filter_is_content_filtered(fake_openai, provider):
    content = unique("[[finish:content_filter]]")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (CONTENT_FILTERED, False)
    assert caught.value.partial is not None and caught.value.partial.text == "Echo: " + content
    assert len(sent(fake_openai, content)) == 1


def test_finish_reason_length_is_returned(fake_openai, provider):
    content = unique("[[finish:length]]")

    assert provider.complete(ask(content)).finish_reason == "length"


def test_exact_reply(fake_openai, provider):
    content = unique("[[reply:Hello, world. Nice day!]]")

    assert provider.complete(ask(content)).text == "Hello, world. Nice day!"


def test_cancel_from_on_delta_stops_the_stream_and_keeps_the_partial_text(fake_openai, provider):
    content = unique("one two three four five six seven eight nine ten eleven twelve")
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 2:
            raise Canceled(Completion(text="", model=""))

    with pytest.raises(Canceled) as caught:
        provider.complete(ask(content), on_delta)

    partial = caught.value.partial
    assert partial.text == "".join(deltas)
    assert ("Echo: " + content).startswith(partial.text)
    assert partial.text != "Echo: " + content
    assert partial.output_tokens == len(partial.text) // 4
    assert len(sent(fake_openai, content)) == 1


def test_streamed_answers_share_one_pooled_connection(fake_openai, provider):
    before = fake_openai.connections

    for n in range(3):
        assert provider.complete(ask(unique(f"answer {n}"))).text.startswith("Echo: answer")

    assert fake_openai.connections - before == 1


def test_calls_after_a_burst_and_a_refusal_reuse_the_connections_left_open(fake_openai, provider):
    with ThreadPoolExecutor(6) as threads:  # six calls at once need six connections
        list(threads.map(lambda n: provider.complete(ask(unique(f"[[slow:0.05]] burst {n}"))), range(6)))
    with pytest.raises(ProviderError):
        provider.complete(ask(unique("[[fail:400]]")))
    before = fake_openai.connections

    for n in range(5):
        provider.complete(ask(unique(f"one at a time {n}")))

    assert fake_openai.connections == before


def test_a_body_held_open_after_done_does_not_hold_the_answer(fake_openai, provider):
    content = unique("[[linger:3]] the server keeps the body open after its last event")
    before = fake_openai.connections
    started = time.monotonic()

    completion = provider.complete(ask(content))

    assert completion.text == "Echo: " + content
    assert time.monotonic() - started < 2  # the drain gave up; the server lingers 3 s
    provider.complete(ask(unique("next")))
    assert fake_openai.connections - before == 2  # that connection was not reused


def test_a_pooled_connection_the_server_closed_is_not_used_again(fake_openai, provider, sleep):
    provider.complete(ask(unique("[[close-after]] the server closes this connection when done")))
    time.sleep(0.2)  # the close reaches the pooled socket
    before = fake_openai.connections
    content = unique("next")

    assert provider.complete(ask(content)).text == "Echo: " + content

    assert fake_openai.connections - before == 1  # a new connection, found without a failed try
    assert sleep.waits == [] and len(sent(fake_openai, content)) == 1


def test_a_cancel_hangs_up_rather_than_reading_the_rest(fake_openai, provider):
    before = fake_openai.connections

    def on_delta(text: str) -> None:
        raise Canceled(Completion(text="", model=""))

    with pytest.raises(Canceled):
        provider.complete(ask(unique("a reply long enough for several chunks of text")), on_delta)
    provider.complete(ask(unique("next")))

    assert fake_openai.connections - before == 2


def under(interrupt: interrupts.Interrupt, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)` with `interrupt` current, as inside a job's Heartbeat."""
    context = contextvars.copy_context()
    context.run(interrupts.current.set, interrupt)
    return context.run(call, *args)


def interrupt_when(ready: Callable[[], Any]) -> interrupts.Interrupt:
    """An Interrupt that another thread (as the heartbeat monitor) interrupts once `ready()`."""
    interrupt = interrupts.Interrupt()

    def watch() -> None:
        wait_until(ready, 10, interval=0.01, message="the moment to interrupt")
        interrupt.interrupt()

    threading.Thread(target=watch, daemon=True).start()
    return interrupt


def test_an_interrupted_call_sends_nothing(fake_openai, provider):
    content = unique("never asked")
    interrupt = interrupts.Interrupt()
    interrupt.interrupt()
    connections = fake_openai.connections

    with pytest.raises(Canceled) as caught:
        under(interrupt, provider.complete, ask(content))

    assert sent(fake_openai, content) == []
    assert fake_openai.connections == connections  # not even a connection was opened
    partial = caught.value.partial  # nothing went out: nothing to charge
    assert (partial.text, partial.input_tokens, partial.output_tokens) == ("", 0, 0)


# Over TLS, as production reaches api.openai.com. A call is read through an ssl.SSLSocket
# there, whose shutdown (the interrupt) drops its SSL object before shutting the socket.


@pytest.fixture
def tls_provider(fake_openai_tls: FakeOpenAI, trust_local_ca, sleep: SleepRecorder) -> OpenAIProvider:
    """A provider reaching the fake over HTTPS, trusting its CA through SSL_CERT_FILE."""
    return OpenAIProvider(make_settings(fake_openai_tls), sleep=sleep)


def test_streams_an_answer_over_tls(fake_openai_tls, tls_provider, sleep):
    """The calls the TLS tests below interrupt would otherwise be answered."""
    content = unique("a reply over TLS long enough for several pieces")
    deltas: list[str] = []

    completion = tls_provider.complete(ask(content), deltas.append)

    assert completion.text == "Echo: " + content
    assert len(deltas) > 1 and "".join(deltas) == completion.text
    assert fake_openai_tls.base_url.startswith("https://localhost:")
    assert len(sent(fake_openai_tls, content)) == 1 and sleep.waits == []


def test_a_certificate_from_a_ca_nobody_trusts_is_refused(fake_openai_tls, monkeypatch):
    """Without SSL_CERT_FILE the fake's certificate is checked, and refused: the TLS tests
    really speak TLS, and trust the local CA the way an operator would make them."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    provider = OpenAIProvider(make_settings(fake_openai_tls, provider_max_attempts=1))
    content = unique("who vouches for this server?")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert sent(fake_openai_tls, content) == []


@pytest.fixture(params=["http", "https"])
def reached(request: pytest.FixtureRequest) -> tuple[FakeOpenAI, OpenAIProvider]:
    """The fake and a provider reaching it (with the test's `sleep`), over plain HTTP and over TLS."""
    if request.param == "https":
        return request.getfixturevalue("fake_openai_tls"), request.getfixturevalue("tls_provider")
    return request.getfixturevalue("fake_openai"), request.getfixturevalue("provider")


def test_an_interrupt_stops_a_call_still_waiting_for_its_response(reached, sleep):
    fake, provider = reached
    content = unique("[[hang]] the provider takes its time")
    interrupt = interrupt_when(lambda: sent(fake, content))
    started = time.monotonic()

    with pytest.raises(Canceled) as caught:  # not a timeout, which would be retried
        under(interrupt, provider.complete, ask(content))

    # Woken, not left to its 2 s read timeout (which, interrupted, would be Canceled too).
    assert time.monotonic() - started < 1
    assert caught.value.partial.text == "" and caught.value.partial.output_tokens == 0
    assert caught.value.partial.input_tokens > 0  # the provider had the prompt: charged as before
    assert len(sent(fake, content)) == 1 and sleep.waits == []


def test_an_interrupt_between_pieces_keeps_the_text_so_far(reached, sleep):
    fake, provider = reached
    content = unique("[[slow:1]] one two three four five six seven eight nine")
    deltas: list[str] = []
    arrived: list[float] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        arrived.append(time.monotonic())

    interrupt = interrupt_when(lambda: deltas)

    with pytest.raises(Canceled) as caught:
        under(interrupt, provider.complete, ask(content), on_delta)

    # Woken, not left to read the next piece a second later (which, interrupted, would be Canceled too).
    assert time.monotonic() - arrived[0] < 0.5
    assert len(deltas) == 1
    assert caught.value.partial.text == deltas[0]
    assert ("Echo: " + content).startswith(deltas[0])
    assert len(sent(fake, content)) == 1 and sleep.waits == []


@pytest.fixture
def unreachable_provider(sleep: SleepRecorder) -> OpenAIProvider:
    """A provider whose every connect hangs, as when a firewall drops the packets: a
    listener with a full accept queue (Linux then drops the connection requests).
    Patient reads (30 s), a short connect timeout (0.3 s), two attempts."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as server:
        host, port = server.getsockname()
        with socket.create_connection((host, port)):  # the one the queue holds
            settings = make_settings(
                f"http://{host}:{port}/v1",
                openai_timeout=30.0,
                openai_connect_timeout=0.3,
                provider_max_attempts=2,
            )
            yield OpenAIProvider(settings, sleep=sleep)


def test_a_provider_that_takes_no_connection_is_given_up_after_the_connect_timeout(
    unreachable_provider, sleep
):
    started = time.monotonic()

    with pytest.raises(ProviderError) as caught:
        unreachable_provider.complete(ask(unique("anyone there?")))

    assert (caught.value.code, caught.value.transient) == (TIMEOUT, True)
    assert len(sleep.waits) == 1  # tried twice, each given up at the connect timeout
    assert time.monotonic() - started < 3  # not the 30 s a read may wait


def test_a_cancel_while_connecting_ends_the_call_at_the_connect_timeout(unreachable_provider, sleep):
    started = time.monotonic()
    interrupt = interrupt_when(lambda: time.monotonic() - started > 0.1)  # the connect is under way

    with pytest.raises(Canceled) as caught:  # not retried, not a timeout
        under(interrupt, unreachable_provider.complete, ask(unique("never connected")))

    assert time.monotonic() - started < 2
    partial = caught.value.partial  # nothing went out: nothing to charge
    assert (partial.text, partial.input_tokens, partial.output_tokens) == ("", 0, 0)


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


def test_get_provider_picks_by_settings_and_reuses_the_openai_client(fake_openai):
    settings = make_settings(fake_openai)

    assert isinstance(get_provider(dataclasses.replace(settings, ai_provider="offline")), OfflineProvider)
    openai_provider = get_provider(settings)
    assert isinstance(openai_provider, OpenAIProvider)
    assert get_provider(dataclasses.replace(settings)) is openai_provider
    assert get_provider(dataclasses.replace(settings, openai_timeout=1.0)) is not openai_provider


# -- offline ------------------------------------------------------------------


def test_offline_text_reply_is_labelled_and_streamed():
    deltas: list[str] = []

    completion = OfflineProvider().complete(ask("Write a haiku about rain " * 20), deltas.append)

    assert completion.text.startswith("[offline provider — no AI model was called]")
    assert "Write a haiku about rain" in completion.text
    assert len(completion.text) < 300
    assert len(deltas) > 1 and "".join(deltas) == completion.text
    assert completion.model == "offline"
    assert completion.input_tokens > 0 and completion.output_tokens == len(completion.text) // 4


def test_offline_json_reply_is_labelled_and_schema_valid():
    completion = OfflineProvider().complete(ask("plan", json_schema=SCHEMA))

    data = json.loads(completion.text)
    jsonschema.validate(data, SCHEMA)
    assert "(offline)" in data["title"]
    assert all("(offline)" in step["name"] for step in data["steps"])
    assert data["level"] == "beginner"
    assert data["code"] == "offl"


def test_offline_honours_cancel():
    def on_delta(text: str) -> None:
        raise Canceled(Completion(text="", model=""))

    with pytest.raises(Canceled) as caught:
        OfflineProvider().complete(ask("hello there, how are you today?"), on_delta)

    assert caught.value.partial.text.startswith("[offline")
