"""The response cache's key: every part of the provider request is in it, identical
requests share it, and whose answer it is; and the clean-up that bounds the cache."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from db.models import ResponseCacheEntry
from db.repositories import response_cache as cache_repo
from db.session import session_scope
from workers import provider_request, response_cache
from workers.providers.base import CompletionRequest
from workers.tools import get_tool

PRICES = {"input": 0.15, "output": 0.6}
USER = uuid.uuid4()
TOOL = get_tool("prompt_enhance")
PERSONAL = dataclasses.replace(get_tool("text"), name="text_kept", cache_ttl=60)
REQUEST = provider_request.build(TOOL, {"prompt": "a rough prompt"}, {}, model="gpt-4o-mini")

# A different value for every field of the request: a field added to CompletionRequest
# and missing here fails test_every_field_is_named_here.
CHANGED: dict[str, Any] = {
    "model": "gpt-4.1-nano",
    "messages": [{"role": "user", "content": "something else"}],
    "max_output_tokens": REQUEST.max_output_tokens + 1,
    "temperature": 0.31,
    "json_schema": {"type": "object"},
    "schema_name": "other",
    "service_tier": "flex",
}


def key(request: CompletionRequest = REQUEST, *, tool=TOOL, user=USER, settings=None) -> str:
    from settings import get_settings

    return response_cache.key(request, tool=tool, user_id=user, settings=settings or get_settings())


def test_every_field_is_named_here():
    assert {field.name for field in dataclasses.fields(CompletionRequest)} == set(CHANGED)


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_changing_any_field_of_the_request_changes_the_key(name):
    assert key(dataclasses.replace(REQUEST, **{name: CHANGED[name]})) != key()


def test_identical_requests_share_a_key_however_they_were_made():
    again = provider_request.build(TOOL, {"prompt": "a rough prompt"}, {}, model="gpt-4o-mini")
    assert again is not REQUEST and key(again) == key()
    assert len(key()) == 64 and int(key(), 16) >= 0  # sha256, hex


def test_the_tools_version_and_the_provider_are_in_the_key(settings):
    assert key(tool=dataclasses.replace(TOOL, version=TOOL.version + 1)) != key()
    assert key(settings=dataclasses.replace(settings, openai_base_url="http://elsewhere/v1")) != key()
    assert key(settings=dataclasses.replace(settings, ai_provider="offline")) != key()


def test_a_model_on_a_catalogue_endpoint_is_keyed_by_that_endpoint(settings, tmp_path):
    def served_at(base_url: str):
        path = tmp_path / f"models-{len(base_url)}.json"
        path.write_text(
            json.dumps(
                {
                    "endpoints": {"local": {"base_url": base_url, "api_key_env": "LOCAL_LLM_KEY"}},
                    "models": {"gpt-4o-mini": {"provider": "local", "prices": {"standard": PRICES}}},
                }
            )
        )
        return dataclasses.replace(settings, ai_provider="openai", model_catalogue_file=str(path))

    here, there = served_at("http://127.0.0.1:8001/v1"), served_at("http://10.0.0.7:8001/v1")
    assert key(settings=here) != key(settings=there)
    # OPENAI_BASE_URL is not where this model is served: it does not change its key.
    assert key(settings=here) == key(
        settings=dataclasses.replace(here, openai_base_url="http://elsewhere/v1")
    )


def test_a_personalised_tools_key_is_its_owners_and_a_shared_tools_is_not():
    assert key(user=uuid.uuid4()) == key()  # prompt_enhance is not personalised
    request = provider_request.build(PERSONAL, {"prompt": "p"}, {}, model="gpt-4o-mini")
    assert key(request, tool=PERSONAL, user=uuid.uuid4()) != key(request, tool=PERSONAL)


def test_the_profile_reaches_a_personalised_tools_key_through_its_messages():
    def built(profile):
        return key(provider_request.build(PERSONAL, {"prompt": "p"}, profile, model="m"), tool=PERSONAL)

    assert built({"name": "Ada"}) != built({"name": "Grace"})


def test_the_sweep_removes_expired_entries_then_the_oldest_beyond_the_bound(settings):
    with session_scope() as session:
        for index in range(4):
            cache_repo.put(
                session,
                key=f"{index:064d}",
                tool="prompt_enhance",
                user_id=None,
                model="gpt-4o-mini",
                output={"text": str(index)},
                input_tokens=1,
                output_tokens=1,
                cost_micros=1,
                source_job_id=uuid.uuid4(),
                ttl_seconds=60,
            )
        old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=index + 1)
        session.execute(
            update(ResponseCacheEntry).where(ResponseCacheEntry.key == f"{3:064d}").values(created_at=old)
        )
        session.execute(
            update(ResponseCacheEntry)
            .where(ResponseCacheEntry.key == f"{0:064d}")
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        assert cache_repo.get(session, key=f"{0:064d}") is None  # expired: never served
    assert response_cache.sweep(dataclasses.replace(settings, response_cache_max_entries=2)) == 2
    with session_scope() as session:
        left = sorted(session.scalars(select(ResponseCacheEntry.key)).all())
    assert left == [f"{1:064d}", f"{2:064d}"]  # the expired one, then the oldest, went
