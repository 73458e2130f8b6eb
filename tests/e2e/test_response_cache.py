"""The response cache through HTTP, a real worker and the fake OpenAI server: the first
job calls the provider, an identical second is answered at submit; what may and may not
be served, to whom; bypass, refresh, purge; and a hit's events, webhook and books."""

import dataclasses
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from db.models import AuditEntry, EmailOutbox, ResponseCacheEntry
from db.session import session_scope
from tests.api.test_admin import make_admin
from tests.e2e.test_operations_worker import scrape, value
from tests.fakes.services import wait_until
from tests.helpers import API, register, submit, wait_for
from workers import provider_request
from workers.tools import TOOLS, get_tool
from workers.tools.general import TEXT

pytestmark = pytest.mark.e2e

PROMPT = {"prompt": "write a blog post about remote work", "task_type": "writing"}


@pytest.fixture
def headers(client, celery_worker):
    return register(client)[0]


@pytest.fixture
def personal_tool(monkeypatch):
    """A cacheable tool that is personalised (every built-in cacheable tool is shared)."""
    tool = dataclasses.replace(TEXT, name="text_kept", cache_ttl=3600)
    monkeypatch.setitem(TOOLS, tool.name, tool)
    return tool.name


def entries() -> list[ResponseCacheEntry]:
    with session_scope() as session:
        found = session.scalars(select(ResponseCacheEntry)).all()
        session.expunge_all()
        return list(found)


def run_to_the_cache(client, headers, tool="prompt_enhance", input=PROMPT, **extra) -> dict:
    """Submit, let the worker finish it, and wait until its answer is kept."""
    before = {entry.source_job_id for entry in entries()}
    response = submit(client, headers, tool=tool, input=input, **extra)
    assert response.status_code == 202, response.get_json()
    job = wait_for(client, headers, response.get_json()["id"])
    assert job["status"] == "succeeded" and job["cached"] is False
    wait_until(
        lambda: {str(e.source_job_id) for e in entries()} - {str(s) for s in before} == {job["id"]},
        10,
        message="the answer to be kept",
    )
    return job


def test_an_identical_second_job_is_answered_at_submit_and_charges_nothing(client, headers, fake_openai):
    metrics_before = scrape(client)
    first = run_to_the_cache(client, headers)
    assert len(fake_openai.requests) == 1 and first["usage"]["cached"] is False
    # The worker sent what the API builds to look up with (workers/provider_request.py).
    [sent] = fake_openai.requests
    built = provider_request.build(get_tool("prompt_enhance"), PROMPT, {"name": "x"}, model=first["model"])
    assert (sent["model"], sent["messages"]) == (built.model, built.messages)
    assert (sent["max_tokens"], sent["temperature"]) == (built.max_output_tokens, built.temperature)
    quota = client.get(f"{API}/usage", headers=headers).get_json()["quota"]

    response = submit(client, headers, tool="prompt_enhance", input=PROMPT)
    assert response.status_code == 202
    second = response.get_json()
    assert second["status"] == "succeeded" and second["cached"] is True  # in the submit's answer
    assert second["output"] == first["output"] and second["progress"] == 100
    assert second["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_micros": 0,
        "lane": "standard",
        "cached": True,
    }
    assert second["started_at"] is None and second["finished_at"] is not None
    assert len(fake_openai.requests) == 1  # no provider call

    usage = client.get(f"{API}/usage", headers=headers).get_json()
    assert usage["quota"] == quota and usage["quota"]["reserved"] == 0  # nothing charged, nothing held
    assert usage["cache"] == {
        "hits": 1,
        "misses": 1,
        "saved_input_tokens": first["usage"]["input_tokens"],
        "saved_output_tokens": first["usage"]["output_tokens"],
        "saved_cost_micros": first["usage"]["cost_micros"],
    }
    admin = make_admin(client)
    stats = client.get(f"{API}/admin/stats", headers=admin).get_json()
    assert stats["cache"] == usage["cache"]

    after = scrape(client)
    for outcome in ("hit", "miss"):
        grew = value(after, "conveyor_response_cache_lookups_total", tool="prompt_enhance", outcome=outcome)
        assert (
            grew
            - value(
                metrics_before,
                "conveyor_response_cache_lookups_total",
                tool="prompt_enhance",
                outcome=outcome,
            )
            == 1
        )
    saved = "conveyor_response_cache_saved_tokens_total"
    assert (
        value(after, saved, tool="prompt_enhance", kind="output")
        - value(metrics_before, saved, tool="prompt_enhance", kind="output")
        == first["usage"]["output_tokens"]
    )


def test_a_hit_sends_its_events_webhook_and_email_as_any_finished_job(client, headers, receiver):
    run_to_the_cache(client, headers)
    response = submit(
        client, headers, tool="prompt_enhance", input=PROMPT, webhook_url=receiver.url(), notify_email=True
    )
    job = response.get_json()
    assert job["cached"] is True

    [request] = receiver.wait_for(1)
    secret = client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"]
    payload = request.verify(secret)
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job["id"]
    assert payload["data"]["cached"] is True and payload["data"]["usage"]["cached"] is True

    stream = urlsplit(job["urls"]["stream"])
    events = client.get(f"{stream.path}?{stream.query}").get_data(as_text=True)
    assert "event: done" in events and '"succeeded"' in events
    with session_scope() as session:
        emails = session.scalar(
            select(func.count())
            .select_from(EmailOutbox)
            .where(EmailOutbox.dedupe_key == f"job_finished:{job['id']}")
        )
    assert emails == 1


def test_bypass_neither_serves_nor_keeps_and_refresh_replaces(client, headers, fake_openai):
    first = run_to_the_cache(client, headers)

    bypassed = submit(client, headers, tool="prompt_enhance", input=PROMPT, cache="bypass").get_json()
    assert bypassed["cached"] is False
    assert wait_for(client, headers, bypassed["id"])["cached"] is False
    assert len(fake_openai.requests) == 2
    [entry] = entries()
    assert str(entry.source_job_id) == first["id"]  # not replaced by the bypassing job

    refreshed = run_to_the_cache(client, headers, cache="refresh")  # waits for it to replace the entry
    assert len(fake_openai.requests) == 3
    [entry] = entries()
    assert str(entry.source_job_id) == refreshed["id"]
    again = submit(client, headers, tool="prompt_enhance", input=PROMPT).get_json()
    assert again["cached"] is True and len(fake_openai.requests) == 3


def test_a_changed_parameter_misses(client, headers, fake_openai):
    run_to_the_cache(client, headers)
    other_input = submit(client, headers, tool="prompt_enhance", input={**PROMPT, "audience": "children"})
    other_model = submit(client, headers, tool="prompt_enhance", input=PROMPT, model="gpt-4.1-nano")
    for response in (other_input, other_model):
        assert response.get_json()["cached"] is False
        assert wait_for(client, headers, response.get_json()["id"])["cached"] is False
    assert len(fake_openai.requests) == 3


def test_a_shared_tool_serves_another_user_but_a_personalised_one_does_not(
    client, headers, fake_openai, personal_tool
):
    other = register(client, email="other@example.com")[0]
    run_to_the_cache(client, headers)
    assert submit(client, other, tool="prompt_enhance", input=PROMPT).get_json()["cached"] is True

    mine = run_to_the_cache(client, headers, tool=personal_tool, input={"prompt": "my plan"})
    assert (
        submit(client, headers, tool=personal_tool, input={"prompt": "my plan"}).get_json()["cached"] is True
    )
    theirs = submit(client, other, tool=personal_tool, input={"prompt": "my plan"}).get_json()
    assert theirs["cached"] is False
    assert wait_for(client, other, theirs["id"])["output"] == mine["output"]  # the same text, but paid for
    assert len(fake_openai.requests) == 3


def test_a_tool_that_declares_no_cache_is_never_cached(client, headers, fake_openai):
    for _ in range(2):
        job = submit(client, headers, tool="text", input={"prompt": "Same again"}).get_json()
        assert wait_for(client, headers, job["id"])["cached"] is False
    assert len(fake_openai.requests) == 2 and entries() == []
    assert client.get(f"{API}/usage", headers=headers).get_json()["cache"]["misses"] == 0


def test_an_admin_purges_by_tool_or_user_and_it_is_audited(client, headers, fake_openai, personal_tool):
    run_to_the_cache(client, headers)
    run_to_the_cache(client, headers, tool=personal_tool, input={"prompt": "mine"})
    admin = make_admin(client)
    assert client.post(f"{API}/admin/cache/purge", json={}, headers=headers).status_code == 403
    bad = client.post(f"{API}/admin/cache/purge", json={"tool": "nope"}, headers=admin)
    assert bad.status_code == 422

    me = client.get(f"{API}/users/me", headers=headers).get_json()["email"]
    purged = client.post(f"{API}/admin/cache/purge", json={"user": me}, headers=admin).get_json()
    assert purged == {"purged": 1, "tool": None, "user": me}
    assert [entry.tool for entry in entries()] == ["prompt_enhance"]  # a shared answer is no one's

    purged = client.post(
        f"{API}/admin/cache/purge", json={"tool": "prompt_enhance"}, headers=admin
    ).get_json()
    assert purged["purged"] == 1 and entries() == []
    job = submit(client, headers, tool="prompt_enhance", input=PROMPT).get_json()
    assert job["cached"] is False  # it runs again
    wait_for(client, headers, job["id"])
    with session_scope() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions == ["response_cache.purge", "response_cache.purge"]


def test_deleting_the_job_that_answered_takes_its_answer_out_of_the_cache(client, headers):
    first = run_to_the_cache(client, headers)
    hit = submit(client, headers, tool="prompt_enhance", input=PROMPT).get_json()
    assert client.delete(f"{API}/jobs/{hit['id']}", headers=headers).status_code == 204
    assert len(entries()) == 1  # a hit's deletion leaves the answer it was served
    assert client.delete(f"{API}/jobs/{first['id']}", headers=headers).status_code == 204
    assert entries() == []
    assert submit(client, headers, tool="prompt_enhance", input=PROMPT).get_json()["cached"] is False


def test_a_batch_items_cache_choice_is_honoured(client, headers, fake_openai):
    def batch_of_one(**extra) -> str:
        item = {"tool": "prompt_enhance", "input": PROMPT, **extra}
        response = client.post(f"{API}/jobs/batch", json={"jobs": [item]}, headers=headers)
        assert response.status_code == 202, response.get_json()
        [made] = response.get_json()["items"]
        assert wait_for(client, headers, made["job"]["id"])["status"] == "succeeded"
        return made["job"]["id"]

    kept = batch_of_one()  # items do not look up, and keep their answer
    wait_until(lambda: entries(), 10, message="the item's answer to be kept")
    batch_of_one(cache="bypass")  # runs, and does not replace it
    [entry] = entries()
    assert str(entry.source_job_id) == kept and len(fake_openai.requests) == 2
