"""The fake OpenAI server itself: what it sends must parse with the real SDK."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import httpx2
import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="test-key", base_url=fake_openai.base_url, max_retries=0, timeout=2.0)


def unique(text: str) -> str:
    return f"{text} #{uuid.uuid4().hex[:8]}"


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def post(fake: FakeOpenAI, body: dict[str, Any]) -> httpx2.Response:
    headers = {"Authorization": "Bearer secret-123"}
    return httpx2.post(fake.base_url + "/chat/completions", json=body, headers=headers, timeout=5)


def test_lists_models(client):
    assert [model.id for model in client.models.list()] == ["fake-model"]


def test_plain_completion_echoes_the_last_user_message(fake_openai, client):
    content = unique("hello")

    reply = client.chat.completions.create(model="m", messages=user(content))

    assert reply.object == "chat.completion"
    assert reply.model == "m"
    assert reply.choices[0].message.content == "Echo: " + content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert any(body["messages"] == user(content) for body in list(fake_openai.requests))


def test_stream_sends_several_chunks_then_usage(client):
    content = unique("a b c d e f g h i j")

    chunks = list(
        client.chat.completions.create(
            model="m", messages=user(content), stream=True, stream_options={"include_usage": True}
        )
    )

    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) >= 3 and "".join(texts) == "Echo: " + content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len("Echo: " + content) // 4
    assert all(c.object == "chat.completion.chunk" and c.id.startswith("chatcmpl-") for c in chunks)


def test_stream_without_include_usage_sends_no_usage(client):
    chunks = list(client.chat.completions.create(model="m", messages=user(unique("hi")), stream=True))

    assert all(c.usage is None and c.choices for c in chunks)


def test_json_schema_request_gets_a_sample_instance(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "out", "schema": SCHEMA}}

    reply = client.chat.completions.create(
        model="m", messages=user(unique("q")), response_format=response_format
    )

    assert json.loads(reply.choices[0].message.content) == {"answer": "answer (sample)"}


def test_invalid_json_marker_breaks_the_schema_only_the_first_time(client):
    content = unique("q [[invalid-json:1]]")
    response_format = {"type": "json_schema", "json_schema": {"name": "out", "schema": SCHEMA}}

    def reply() -> Any:
        answer = client.chat.completions.create(
            model="m", messages=user(content), response_format=response_format
        )
        return json.loads(answer.choices[0].message.content)

    assert reply() == {"unexpected": True}
    assert reply() == {"answer": "answer (sample)"}


def test_reply_and_finish_markers(client):
    content = unique("[[reply:Exactly this.]] [[finish:length]]")

    reply = client.chat.completions.create(model="m", messages=user(content))

    assert reply.choices[0].message.content == "Exactly this."
    assert reply.choices[0].finish_reason == "length"


def test_the_newest_user_message_with_markers_decides(client):
    newer_wins = [
        {"role": "user", "content": "[[fail:500]]"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": unique("fine [[reply:from the newest]]")},
    ]
    reply = client.chat.completions.create(model="m", messages=newer_wins)
    assert reply.choices[0].message.content == "from the newest"


def test_a_follow_up_turn_without_markers_inherits_the_prompts(client):
    follow_up = [
        {"role": "user", "content": unique("[[reply:inherited]]")},
        {"role": "assistant", "content": "{}"},
        {"role": "user", "content": "Fix it."},
    ]
    reply = client.chat.completions.create(model="m", messages=follow_up)
    assert reply.choices[0].message.content == "inherited"


@pytest.mark.parametrize(
    ("marker", "error", "code"),
    [
        ("[[fail:429]]", openai.RateLimitError, "rate_limit_exceeded"),
        ("[[fail:quota]]", openai.RateLimitError, "insufficient_quota"),
        ("[[fail:400]]", openai.BadRequestError, None),
        ("[[fail:content_filter]]", openai.BadRequestError, "content_filter"),
        ("[[fail:401]]", openai.AuthenticationError, "invalid_api_key"),
        ("[[fail:500]]", openai.InternalServerError, None),
        ("[[fail:503]]", openai.InternalServerError, None),
    ],
)
def test_fail_markers_raise_the_sdk_errors(client, marker, error, code):
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="m", messages=user(unique(marker)), stream=True)

    assert caught.value.code == code


def test_rate_limit_sends_retry_after(fake_openai):
    response = post(fake_openai, {"model": "m", "messages": user(unique("[[fail:429]]"))})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["type"] == "requests"


def test_unauthorized_repeats_the_key_like_openai_does(fake_openai):
    response = post(fake_openai, {"model": "m", "messages": user(unique("[[fail:401]]"))})

    assert response.status_code == 401
    assert "secret-123" in response.json()["error"]["message"]


def test_counted_failure_fails_only_the_first_n_requests_of_that_message(fake_openai):
    content = unique("[[fail:503:2]]")
    body = {"model": "m", "messages": user(content)}

    statuses = [post(fake_openai, body).status_code for _ in range(4)]

    assert statuses == [503, 503, 200, 200]
    assert post(fake_openai, {"model": "m", "messages": user(unique("[[fail:503:2]]"))}).status_code == 503


def test_malformed_marker(fake_openai, client):
    response = post(fake_openai, {"model": "m", "messages": user(unique("[[malformed]]"))})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        response.json()

    with pytest.raises(ValueError):
        list(client.chat.completions.create(model="m", messages=user(unique("[[malformed]]")), stream=True))


def test_hang_marker_waits_until_the_client_gives_up(fake_openai):
    client = openai.OpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0, timeout=0.3)

    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=user(unique("[[hang]]")))


def test_slow_marker_delays_each_chunk(fake_openai):
    client = openai.OpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0, timeout=0.15)

    with pytest.raises(openai.APITimeoutError):
        list(client.chat.completions.create(model="m", messages=user(unique("[[slow:0.3]]")), stream=True))


def test_cut_marker_drops_the_connection_mid_stream(client):
    stream = client.chat.completions.create(
        model="m", messages=user(unique("[[cut]] one two three four")), stream=True
    )
    received: list[str] = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "Echo: [[cut]] one "


def test_unknown_path_is_404(fake_openai):
    assert httpx2.get(fake_openai.base_url + "/nowhere", timeout=5).status_code == 404


def test_reset_clears_requests_and_counters():
    with FakeOpenAI() as fake:
        body = {"model": "m", "messages": user("[[fail:500:1]]")}
        assert post(fake, body).status_code == 500
        assert post(fake, body).status_code == 200
        assert len(fake.requests) == 2

        fake.reset()

        assert fake.requests == []
        assert post(fake, body).status_code == 500


def test_stop_releases_a_hung_request():
    fake = FakeOpenAI().start()
    client = openai.OpenAI(api_key="k", base_url=fake.base_url, max_retries=0, timeout=30.0)
    errors: list[Exception] = []

    def call() -> None:
        try:
            client.chat.completions.create(model="m", messages=user("[[hang]]"))
        except Exception as err:
            errors.append(err)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    fake.stop()
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert isinstance(errors[0], openai.APIConnectionError)


def test_a_mix_draws_marker_less_requests_and_leaves_marked_ones_alone():
    from tests.fakes.openai_script import Mix

    with FakeOpenAI(mix=Mix(rate_limited=1.0, seed=1)) as fake:
        limited = post(fake, {"model": "m", "messages": user("plain")})
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert post(fake, {"model": "m", "messages": user("[[reply:as asked]]")}).status_code == 200

    with FakeOpenAI(mix=Mix(rate_limited=0, server_error=0, hang=0, latency=(0.6, 0.6))) as fake:
        hasty = openai.OpenAI(api_key="k", base_url=fake.base_url, max_retries=0, timeout=0.2)
        with pytest.raises(openai.APITimeoutError):  # the latency drawn holds the answer back
            hasty.chat.completions.create(model="m", messages=user("plain"))
        patient = openai.OpenAI(api_key="k", base_url=fake.base_url, max_retries=0, timeout=5)
        stream = patient.chat.completions.create(model="m", messages=user("plain"), stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "Echo: plain"


def test_a_stalled_server_holds_every_request_until_it_is_released():
    with FakeOpenAI() as fake:
        fake.stalled.set()
        client = openai.OpenAI(api_key="k", base_url=fake.base_url, max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=user("[[reply:ok]]"))
        fake.stalled.clear()
        assert client.chat.completions.create(model="m", messages=user("[[reply:ok]]")).choices[0].message
