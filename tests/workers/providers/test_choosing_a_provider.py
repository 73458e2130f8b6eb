"""Which provider the settings choose, and the offline provider that calls no model."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from tests.workers.providers.calls import SCHEMA, ask, make_settings
from workers.providers import get_provider
from workers.providers.base import Canceled, Completion
from workers.providers.offline import OfflineProvider
from workers.providers.openai_provider import OpenAIProvider


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
