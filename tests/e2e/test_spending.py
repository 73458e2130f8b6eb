"""Spending less, through the Procfile's web and AI worker (two pool processes) with an
operator's model catalogue: a job falls back to another model (on another endpoint) when
its own is down, a breaker shared by the workers skips a failing model and tries it again
after its cool-down, a flex job's call carries the tier, waits out "resource unavailable"
and then runs on the standard tier, and the ledger prices each call at its own model and
lane."""

import json
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from db.redis_client import get_redis
from tests.e2e.conftest import launch_stack
from tests.fakes.services import wait_until
from tests.helpers import call, mark_verified, poll

pytestmark = pytest.mark.e2e

COOLDOWN = 4  # seconds the breaker skips a model
# $ per million tokens: the prices the assertions below work from.
CATALOGUE = {
    "endpoints": {"second": {"base_url": "", "api_key_env": "SECOND_PROVIDER_KEY"}},
    "models": {
        "gpt-4o-mini": {
            "prices": {
                "standard": {"input": 1, "output": 2},
                "flex": {"input": 0.5, "output": 1},
            },
            "fallbacks": ["gpt-4.1-nano"],
        },
        "gpt-4.1-nano": {"provider": "second", "prices": {"standard": {"input": 3, "output": 4}}},
        "gpt-4o": {"prices": {"standard": {"input": 5, "output": 10}}, "plans": ["pro", "business"]},
    },
}


@pytest.fixture(scope="module")
def base(tmp_path_factory, fake_openai):
    workdir = tmp_path_factory.mktemp("spending")
    models = json.loads(json.dumps(CATALOGUE))
    models["endpoints"]["second"]["base_url"] = fake_openai.base_url
    path = workdir / "models.json"
    path.write_text(json.dumps(models))
    url, stop = launch_stack(
        workdir,
        ("web", "worker_ai"),
        MODEL_CATALOGUE_FILE=str(path),
        SECOND_PROVIDER_KEY="second-key",
        BREAKER_FAILURES="2",
        BREAKER_COOLDOWN=str(COOLDOWN),
        FLEX_MAX_WAIT="2",
    )
    yield url
    stop()


def account(base: str, plan: str | None = None) -> str:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    status, _, body = call(
        "POST", f"{base}/auth/register", {"email": email, "password": "a long password", "name": "Saver"}
    )
    assert status == 201, body
    mark_verified(body["user"]["id"], email)
    if plan is not None:
        from db.models import User
        from db.session import session_scope

        with session_scope() as session:
            session.get(User, uuid.UUID(body["user"]["id"])).plan = plan
    return body["access_token"]


def run(base: str, token: str, prompt: str, **fields) -> dict:
    body = {"tool": fields.pop("tool", "text"), "input": fields.pop("input", {"prompt": prompt}), **fields}
    status, _, job = call("POST", f"{base}/jobs", body, token)
    assert status == 202, job
    return poll(base, token, job)


def sent(fake, marker: str, *, keys: bool = False) -> list[tuple]:
    """(model, service_tier) of each request the fake server got for prompts with `marker`;
    with `keys`, (model, the API key it came with)."""
    return [
        (body["model"], key if keys else body.get("service_tier"))
        for body, key in zip(list(fake.requests), list(fake.api_keys), strict=False)
        if marker in json.dumps(body["messages"])
    ]


def price(input_per_m: float, output_per_m: float, usage: dict) -> int:
    total = usage["input_tokens"] * input_per_m + usage["output_tokens"] * output_per_m
    return -(-round(total * 1_000_000) // 1_000_000)


def test_a_job_falls_back_to_the_next_model_when_its_own_is_down(base, fake_openai):
    token = account(base)
    job = run(base, token, "fallback-1 [[fail-model:gpt-4o-mini:500]] tell me")
    assert job["status"] == "succeeded", job
    assert job["model"] == "gpt-4o-mini" and job["answered_by"] == "gpt-4.1-nano"
    assert job["attempts"] == [
        {"model": "gpt-4o-mini", "outcome": "failed", "error_code": "provider_error"},
        {"model": "gpt-4.1-nano", "outcome": "succeeded", "error_code": None},
    ]
    # The provider's retries on the first model, then one call to the fallback.
    assert sent(fake_openai, "fallback-1") == [("gpt-4o-mini", None)] * 3 + [("gpt-4.1-nano", None)]
    # The fallback is served by the other endpoint, with that endpoint's key.
    assert sent(fake_openai, "fallback-1", keys=True)[-2:] == [
        ("gpt-4o-mini", "test-key"),
        ("gpt-4.1-nano", "second-key"),
    ]
    # Priced at the model that answered.
    assert job["usage"]["cost_micros"] == price(3, 4, job["usage"]) > 0

    # A request the provider refuses as invalid does not fall back.
    refused = run(base, token, "fallback-2 [[fail:400]]")
    assert refused["status"] == "failed" and refused["error"]["code"] == "invalid_request"
    assert refused["attempts"] == [
        {"model": "gpt-4o-mini", "outcome": "failed", "error_code": "invalid_request"}
    ]
    assert [model for model, _ in sent(fake_openai, "fallback-2")] == ["gpt-4o-mini"]

    # The ledger prices each call at its own model.
    healthy = run(base, token, "fallback-3 all fine")
    assert healthy["answered_by"] == "gpt-4o-mini"
    status, _, usage = call("GET", f"{base}/usage?group_by=model", token=token)
    assert status == 200, usage
    by_model = {item["key"]: item for item in usage["items"]}
    assert set(by_model) == {"gpt-4o-mini", "gpt-4.1-nano"}
    assert by_model["gpt-4.1-nano"]["cost_micros"] == job["usage"]["cost_micros"]
    assert (
        by_model["gpt-4o-mini"]["cost_micros"]
        == healthy["usage"]["cost_micros"]
        == price(1, 2, healthy["usage"])
    )


def test_the_breaker_skips_a_failing_model_for_every_worker_then_tries_it_again(base, fake_openai):
    token = account(base)
    # Two failures, whichever worker process runs each, open the breaker...
    for n in range(2):
        failed_over = run(base, token, f"breaker-{n} [[fail-model:gpt-4o-mini:503]]")
        assert failed_over["answered_by"] == "gpt-4.1-nano", failed_over
    # ...so the next job does not call the model at all.
    skipped = run(base, token, "breaker-skip healthy now")
    assert skipped["status"] == "succeeded" and skipped["answered_by"] == "gpt-4.1-nano"
    assert skipped["attempts"][0] == {
        "model": "gpt-4o-mini",
        "outcome": "skipped",
        "error_code": "breaker_open",
    }
    assert sent(fake_openai, "breaker-skip") == [("gpt-4.1-nano", None)]
    gauges = scrape(f"{base}/metrics")
    assert gauges.get(("conveyor_breaker_open", "openai", "gpt-4o-mini", "open")) == 1

    # After the cool-down one job tries the model again; its success closes the breaker.
    redis = get_redis()
    wait_until(lambda: not redis.exists("conveyor:breaker:open:openai|gpt-4o-mini"), timeout=COOLDOWN + 5)
    again = run(base, token, "breaker-again")
    assert again["answered_by"] == "gpt-4o-mini" and len(again["attempts"]) == 1
    assert ("conveyor_breaker_open", "openai", "gpt-4o-mini", "open") not in scrape(f"{base}/metrics")


def scrape(url: str) -> dict[tuple, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (
            sample.name,
            *(sample.labels[name] for name in ("provider", "model", "state") if name in sample.labels),
        ): (sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_flex_job_asks_for_the_tier_and_is_priced_at_flex_rates(base, fake_openai):
    token = account(base, plan="pro")
    job = run(base, token, "flex-1 cheaper please", service_tier="flex")
    assert job["status"] == "succeeded", job
    assert (
        job["service_tier"] == "flex" and job["usage"]["lane"] == "flex" and job["usage"]["cached"] is False
    )
    assert sent(fake_openai, "flex-1") == [("gpt-4o-mini", "flex")]
    assert job["usage"]["cost_micros"] == price(0.5, 1, job["usage"])

    # What it saved, by lane.
    status, _, usage = call("GET", f"{base}/usage?group_by=lane", token=token)
    assert status == 200, usage
    (flex,) = usage["items"]
    assert flex["key"] == "flex" and flex["cost_micros"] == job["usage"]["cost_micros"]
    assert flex["standard_cost_micros"] == price(1, 2, job["usage"])
    assert usage["totals"]["saved_micros"] == flex["standard_cost_micros"] - flex["cost_micros"] > 0

    # A model without a flex lane is refused at submit.
    status, _, refused = call(
        "POST",
        f"{base}/jobs",
        {"tool": "text", "input": {"prompt": "x"}, "model": "gpt-4o", "service_tier": "flex"},
        token,
    )
    assert status == 422 and "no flex lane" in refused["errors"]["json"]["service_tier"][0], refused


def test_flex_waits_out_resource_unavailable_then_runs_on_the_standard_tier(base, fake_openai):
    token = account(base, plan="pro")
    job = run(base, token, "flex-busy-1 [[flex-busy]]", service_tier="flex")
    assert job["status"] == "succeeded", job
    calls = sent(fake_openai, "flex-busy-1")
    # Tried on flex (waiting between tries) for FLEX_MAX_WAIT, then once on standard.
    assert calls[-1] == ("gpt-4o-mini", None) and set(calls[:-1]) == {("gpt-4o-mini", "flex")}
    assert len(calls) >= 2
    assert job["usage"]["lane"] == "standard" and job["usage"]["cost_micros"] == price(1, 2, job["usage"])


def test_the_free_plan_runs_background_tools_on_flex_and_may_not_use_a_pro_model(base, fake_openai):
    token = account(base)  # free
    report = run(base, token, "", tool="content", input={"topic": "flex-default queues", "platform": "blog"})
    assert report["status"] == "succeeded", report
    assert report["service_tier"] == "flex" and report["usage"]["lane"] == "flex"
    interactive = run(base, token, "flex-default-chat")
    assert interactive["service_tier"] is None and sent(fake_openai, "flex-default-chat") == [
        ("gpt-4o-mini", None)
    ]

    status, _, refused = call(
        "POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": "x"}, "model": "gpt-4o"}, token
    )
    assert status == 403, refused
    assert "needs the pro plan" in refused["message"]
