"""The OpenAI provider's answers, through the real openai SDK against the fake OpenAI server:
streamed text, JSON for a schema, finish reasons, and a cancel from the caller."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.workers.providers.calls import SCHEMA, ask, sent, unique
from workers.providers.base import CONTENT_FILTERED, Canceled, Completion, ProviderError


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
