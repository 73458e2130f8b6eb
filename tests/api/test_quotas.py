"""What a plan lets a user submit: its tools and models (403), its monthly token
quota (402, never exceeded by concurrent submits), its jobs a day (429) and its
request rate (429). No worker runs: jobs stay queued."""

import dataclasses
import threading
import uuid

import pytest
from sqlalchemy import select, update

from db.models import DailyJobCount, EmailOutbox, Job, UsageCounter, User
from db.session import session_scope
from tests import rows
from tests.helpers import API, register, submit
from workers import metering, pipeline, plans
from workers.tools import get_tool

FREE = plans.PLANS["free"]
PROMPT = {"prompt": "Write a haiku about queues."}


@pytest.fixture
def account(client):
    headers, body = register(client)
    return headers, uuid.UUID(body["user"]["id"])


def estimate(input=PROMPT, tool="text") -> int:
    return metering.estimate_job_tokens(get_tool(tool), input, {"name": "Ada"})


def set_plan(user_id: uuid.UUID, plan: str) -> None:
    with session_scope() as session:
        session.execute(update(User).where(User.id == user_id).values(plan=plan))


def set_used(user_id: uuid.UUID, tokens: int) -> None:
    rows.usage_counter(user_id, tokens_used=tokens)


def counter(user_id: uuid.UUID) -> tuple[int, int]:
    with session_scope() as session:
        row = session.execute(
            select(UsageCounter.tokens_used, UsageCounter.tokens_reserved).where(
                UsageCounter.user_id == user_id
            )
        ).first()
    return (row[0], row[1]) if row else (0, 0)


def job_count(user_id: uuid.UUID) -> int:
    with session_scope() as session:
        return len(session.scalars(select(Job.id).where(Job.user_id == user_id)).all())


def test_a_tool_outside_the_plan_is_403_naming_the_plan_that_has_it(client, account):
    headers, user_id = account
    response = submit(
        client, headers, tool="document", input=get_tool("document").input_schema["examples"][0]
    )
    assert response.status_code == 403
    body = response.get_json()
    assert body["message"] == "The document tool needs the pro plan or higher; you are on free."
    assert body["errors"] == {"plan": {"current": "free", "required": "pro"}}
    assert job_count(user_id) == 0 and counter(user_id) == (0, 0)


def test_a_model_outside_the_plan_is_403(client, account):
    headers, _ = account
    response = submit(client, headers, model="gpt-4o")
    assert response.status_code == 403
    assert "'gpt-4o' needs the pro plan" in response.get_json()["message"]


def test_a_paid_plan_may_use_them(client, account):
    headers, user_id = account
    set_plan(user_id, "pro")
    document = get_tool("document").input_schema["examples"][0]
    assert submit(client, headers, tool="document", input=document).status_code == 202
    assert submit(client, headers, model="gpt-4o").status_code == 202


def test_over_the_quota_is_402_with_limit_used_and_reserved(client, account):
    headers, user_id = account
    needed = estimate()
    set_used(user_id, FREE.monthly_tokens - needed + 1)  # one token short
    response = submit(client, headers, input=PROMPT)
    assert response.status_code == 402
    body = response.get_json()
    assert body["status"] == "Payment Required" and "tokens" in body["message"]
    quota = body["errors"]["quota"]
    assert (quota["limit"], quota["used"], quota["reserved"]) == (
        FREE.monthly_tokens,
        FREE.monthly_tokens - needed + 1,
        0,
    )
    assert quota["remaining"] == needed - 1 and quota["requested"] == needed
    assert quota["resets_on"] > quota["period_start"]
    assert job_count(user_id) == 0
    with session_scope() as session:  # the refused job did not count towards the day either
        assert session.scalar(select(DailyJobCount.jobs).where(DailyJobCount.user_id == user_id)) is None

    set_used(user_id, FREE.monthly_tokens - needed)  # exactly enough
    assert submit(client, headers, input=PROMPT).status_code == 202
    assert counter(user_id) == (FREE.monthly_tokens - needed, needed)


def test_twenty_concurrent_submits_at_the_edge_never_go_over(app, account):
    headers, user_id = account
    needed = estimate()
    room_for = 5
    set_used(user_id, FREE.monthly_tokens - room_for * needed - needed // 2)
    start = threading.Barrier(20)
    results: list[tuple[int, dict]] = []

    def one(n: int) -> None:
        client = app.test_client()
        start.wait()
        response = submit(client, headers, input=PROMPT, **{})
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(status for status, _ in results)
    assert statuses == [202] * room_for + [402] * (20 - room_for)
    used, reserved = counter(user_id)
    assert used + reserved <= FREE.monthly_tokens and reserved == room_for * needed
    assert job_count(user_id) == room_for
    for status, body in results:
        if status == 402:
            quota = body["errors"]["quota"]
            assert quota["limit"] == FREE.monthly_tokens and quota["used"] == used
            assert quota["reserved"] == room_for * needed


def test_more_jobs_than_the_plan_allows_a_day_is_429(client, account):
    headers, user_id = account
    rows.daily_job_count(user_id, count=FREE.jobs_per_day)
    response = submit(client, headers)
    assert response.status_code == 429
    body = response.get_json()
    assert body["errors"] == {"jobs_per_day": {"limit": FREE.jobs_per_day, "used": FREE.jobs_per_day}}
    assert "midnight UTC" in body["message"]
    assert 0 < int(response.headers["Retry-After"]) <= 86400
    assert job_count(user_id) == 0 and counter(user_id) == (0, 0)


def test_a_plan_change_applies_to_the_quota_at_once(client, account):
    headers, user_id = account
    set_used(user_id, FREE.monthly_tokens)
    assert submit(client, headers).status_code == 402
    set_plan(user_id, "pro")  # what a Stripe subscription event does
    assert submit(client, headers).status_code == 202
    quota = client.get(f"{API}/usage", headers=headers).get_json()["quota"]
    assert quota["limit"] == plans.PLANS["pro"].monthly_tokens and quota["used"] == FREE.monthly_tokens


def test_an_idempotent_replay_reserves_nothing_more(client, account):
    headers, user_id = account
    keyed = {"Idempotency-Key": "once", **headers}
    assert submit(client, keyed).status_code == 202
    assert submit(client, keyed).status_code == 202
    assert counter(user_id) == (0, estimate({"prompt": "Hello"}))


def test_the_quota_is_settled_when_the_job_finishes(client, account, settings, fake_openai):
    headers, _ = account
    job_id = submit(client, headers, input=PROMPT).get_json()["id"]
    quota = client.get(f"{API}/usage", headers=headers).get_json()["quota"]
    assert (quota["used"], quota["reserved"]) == (0, estimate())

    assert pipeline.run_job(uuid.UUID(job_id), settings=settings).status == "succeeded"
    job = client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()
    spent = job["usage"]["input_tokens"] + job["usage"]["output_tokens"]
    quota = client.get(f"{API}/usage", headers=headers).get_json()["quota"]
    assert (quota["used"], quota["reserved"], quota["remaining"]) == (spent, 0, FREE.monthly_tokens - spent)


def test_canceling_a_queued_job_gives_its_tokens_back(client, account):
    headers, user_id = account
    job_id = submit(client, headers).get_json()["id"]
    assert counter(user_id)[1] > 0
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=headers).status_code == 202
    assert counter(user_id) == (0, 0)


def test_submissions_beyond_the_plans_request_rate_are_429(client, account, monkeypatch):
    headers, _ = account
    monkeypatch.setitem(plans.PLANS, "free", dataclasses.replace(FREE, request_rate="3/minute"))
    assert [submit(client, headers).status_code for _ in range(3)] == [202, 202, 202]
    response = submit(client, headers)
    assert response.status_code == 429
    assert "3/minute" in response.get_json()["message"] and int(response.headers["Retry-After"]) > 0
    other, _ = register(client)
    assert submit(client, other).status_code == 202  # counted per user


# ---------------------------------------------------------------- unverified accounts


def verify(client, settings, email: str) -> None:
    with session_scope() as session:
        link = session.scalars(
            select(EmailOutbox.context).where(
                EmailOutbox.template == "verify_email", EmailOutbox.to_address == email
            )
        ).first()["link"]
    assert client.get(link.removeprefix(settings.public_base_url)).status_code == 200


def test_an_unverified_account_gets_a_few_jobs_a_day_until_it_verifies(client, settings):
    headers, body = register(client, email="new@example.com", verified=False)
    user_id = uuid.UUID(body["user"]["id"])
    codes = [submit(client, headers).status_code for _ in range(plans.UNVERIFIED_JOBS_PER_DAY)]
    assert codes == [202] * plans.UNVERIFIED_JOBS_PER_DAY
    response = submit(client, headers)
    refused = response.get_json()
    assert response.status_code == 429, refused
    assert "Until your email address is verified" in refused["message"]
    assert "POST /api/v1/auth/verify-email" in refused["message"] and "link" in refused["message"]
    assert refused["errors"]["jobs_per_day"]["limit"] == plans.UNVERIFIED_JOBS_PER_DAY
    assert job_count(user_id) == plans.UNVERIFIED_JOBS_PER_DAY

    verify(client, settings, "new@example.com")
    assert submit(client, headers).status_code == 202  # the plan's own allowance, at once


def test_an_unverified_account_has_a_small_token_quota_until_it_verifies(client, settings):
    headers, body = register(client, email="quota@example.com", verified=False)
    user_id = uuid.UUID(body["user"]["id"])
    set_used(user_id, plans.UNVERIFIED_MONTHLY_TOKENS - estimate() + 1)
    quota = client.get(f"{API}/usage", headers=headers).get_json()["quota"]
    assert quota["limit"] == plans.UNVERIFIED_MONTHLY_TOKENS
    response = submit(client, headers, input=PROMPT)
    assert response.status_code == 402
    assert "Until your email address is verified" in response.get_json()["message"]

    verify(client, settings, "quota@example.com")
    assert submit(client, headers, input=PROMPT).status_code == 202
    assert client.get(f"{API}/usage", headers=headers).get_json()["quota"]["limit"] == FREE.monthly_tokens
