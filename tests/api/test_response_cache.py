"""Submit's `cache` field and the look-up at submit, with no worker running: a kept
answer finishes the job in the submit's answer; a scheduled job, `bypass`, `refresh`
and RESPONSE_CACHE=off do not look."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from db.repositories import response_cache as cache_repo
from db.session import session_scope
from tests.helpers import API, assert_error, register, submit
from workers import provider_request, response_cache
from workers.tools import get_tool

PROMPT = {"prompt": "make this better"}


@pytest.fixture
def headers(client):
    return register(client)[0]


@pytest.fixture
def kept(settings):
    """An answer kept for PROMPT with the default model (prompt_enhance shares answers)."""
    tool = get_tool("prompt_enhance")
    request = provider_request.build(tool, PROMPT, {}, model=settings.default_model)
    with session_scope() as session:
        cache_repo.put(
            session,
            key=response_cache.key(request, tool=tool, user_id=uuid.uuid4(), settings=settings),
            tool=tool.name,
            user_id=None,
            model=request.model,
            output={"text": "A kept answer."},
            input_tokens=30,
            output_tokens=20,
            cost_micros=17,
            source_job_id=uuid.uuid4(),
            ttl_seconds=60,
        )
    return {"text": "A kept answer."}


def test_cache_is_one_of_three_words(client, headers):
    response = submit(client, headers, tool="prompt_enhance", input=PROMPT, cache="sometimes")
    assert_error(response, 422, "")
    assert response.get_json()["errors"]["json"]["cache"] == ["cache is one of: default, bypass, refresh."]


def test_a_kept_answer_finishes_the_job_in_the_submits_answer(client, headers, kept):
    response = submit(client, headers, tool="prompt_enhance", input=PROMPT)
    job = response.get_json()
    assert response.status_code == 202 and job["status"] == "succeeded" and job["cached"] is True
    assert job["output"] == kept and job["queue"] is None
    assert client.get(f"{API}/jobs/{job['id']}", headers=headers).get_json()["cached"] is True


@pytest.mark.parametrize("extra", [{"cache": "bypass"}, {"cache": "refresh"}, {"delay_seconds": 60}])
def test_bypass_refresh_and_a_scheduled_job_do_not_look(client, headers, kept, extra):
    job = submit(client, headers, tool="prompt_enhance", input=PROMPT, **extra).get_json()
    assert job["status"] in ("queued", "scheduled") and job["cached"] is False


def test_nothing_is_looked_up_with_the_cache_off(settings, kept):
    from api import create_app

    client = create_app(dataclasses.replace(settings, response_cache="off")).test_client()
    headers = register(client)[0]
    job = submit(client, headers, tool="prompt_enhance", input=PROMPT).get_json()
    assert job["status"] == "queued" and job["cached"] is False


def test_an_expired_answer_is_not_served(client, headers, kept):
    from sqlalchemy import update

    from db.models import ResponseCacheEntry

    with session_scope() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(update(ResponseCacheEntry).values(expires_at=past))
    assert submit(client, headers, tool="prompt_enhance", input=PROMPT).get_json()["cached"] is False


def test_an_idempotency_key_remembers_the_cache_choice(client, headers):
    key = {"Idempotency-Key": "same-key"}
    body = {"tool": "prompt_enhance", "input": PROMPT}
    assert client.post(f"{API}/jobs", json=body, headers={**headers, **key}).status_code == 202
    again = client.post(f"{API}/jobs", json={**body, "cache": "refresh"}, headers={**headers, **key})
    assert_error(again, 422, "Idempotency-Key was already used with a different request body")
