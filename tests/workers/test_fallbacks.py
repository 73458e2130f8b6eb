"""A job's chain of models, and the walk along it: which errors move on, which stop the
job, what the job records and counts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from db.redis_client import get_redis
from settings import Settings
from workers import catalogue, fallbacks, metrics
from workers.breaker import Breaker
from workers.plans import PLANS
from workers.providers.base import (
    CONTENT_FILTERED,
    INVALID_REQUEST,
    PROVIDER_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    Completion,
    CompletionRequest,
    ProviderError,
)
from workers.tools import get_tool

MODELS = {
    "models": {
        "a": {"prices": {"standard": {"input": 1, "output": 1}}, "fallbacks": ["b", "pro-only", "c"]},
        "b": {"prices": {"standard": {"input": 1, "output": 1}}},
        "c": {"prices": {"standard": {"input": 1, "output": 1}, "flex": {"input": 0.5, "output": 0.5}}},
        "pro-only": {"prices": {"standard": {"input": 1, "output": 1}}, "plans": ["pro", "business"]},
    }
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(MODELS))
    return dataclasses.replace(Settings.from_env({}), model_catalogue_file=str(path))


def test_the_chain_is_the_first_list_of_tool_plan_catalogue_that_the_plan_may_use(settings):
    text = get_tool("text")
    assert fallbacks.chain("a", tool=text, plan=PLANS["free"], settings=settings) == ["a", "b", "c"]
    assert fallbacks.chain("a", tool=text, plan=PLANS["pro"], settings=settings) == [
        "a",
        "b",
        "pro-only",
        "c",
    ]
    with_plan = dataclasses.replace(PLANS["free"], fallbacks=("c", "a"))
    assert fallbacks.chain("a", tool=text, plan=with_plan, settings=settings) == ["a", "c"]
    with_tool = dataclasses.replace(text, fallbacks=("b",))
    assert fallbacks.chain("a", tool=with_tool, plan=with_plan, settings=settings) == ["a", "b"]
    assert fallbacks.chain("b", tool=text, plan=PLANS["free"], settings=settings) == ["b"]


class Models:
    """Answers as each model is told to: an error code, or a reply."""

    def __init__(self, **errors: str) -> None:
        self.errors = errors
        self.asked: list[tuple[str, str | None]] = []

    def __call__(self, request: CompletionRequest) -> Completion:
        self.asked.append((request.model, request.service_tier))
        code = self.errors.get(request.model)
        if code is not None:
            raise ProviderError(code, f"{request.model} failed", transient=code != INVALID_REQUEST)
        return Completion(
            f"from {request.model}", request.model, 1, 1, "stop", request.service_tier or "standard"
        )


def walk(settings, models: Models, chain=("a", "b", "c"), service_tier=None) -> fallbacks.Attempts:
    attempts = fallbacks.Attempts()
    request = CompletionRequest("a", [{"role": "user", "content": "hi"}], 10, service_tier=service_tier)
    fallbacks.complete(
        request,
        list(chain),
        models,
        breaker=Breaker(get_redis(), failures=100, window=60, cooldown=60),
        models_of=catalogue.get_catalogue(settings),
        attempts=attempts,
    )
    return attempts


@pytest.mark.parametrize("code", [PROVIDER_ERROR, RATE_LIMITED, TIMEOUT])
def test_provider_errors_rate_limits_and_timeouts_move_on_and_are_counted(settings, code):
    def taken() -> float:
        labels = {"from_model": "a", "to_model": "b", "reason": code}
        return metrics.registry().get_sample_value("conveyor_fallbacks_total", labels) or 0.0

    before = taken()
    attempts = walk(settings, Models(a=code))
    assert attempts.items == [
        {"model": "a", "outcome": "failed", "error_code": code},
        {"model": "b", "outcome": "succeeded", "error_code": None},
    ]
    assert attempts.answered_by == "b" and taken() == before + 1


@pytest.mark.parametrize("code", [INVALID_REQUEST, CONTENT_FILTERED])
def test_an_invalid_or_filtered_request_stops_the_job(settings, code):
    models = Models(a=code)
    with pytest.raises(ProviderError):
        walk(settings, models)
    assert models.asked == [("a", None)]


def test_an_answer_that_had_started_streaming_is_not_asked_again(settings):
    def streamed_then_failed(request: CompletionRequest) -> Completion:
        raise ProviderError(PROVIDER_ERROR, "cut", transient=True, partial=Completion("half", "a"))

    with pytest.raises(ProviderError):
        walk(settings, streamed_then_failed)


def test_the_last_models_error_is_the_jobs_and_flex_goes_only_to_models_that_have_it(settings):
    models = Models(a=PROVIDER_ERROR, b=PROVIDER_ERROR, c=TIMEOUT)
    with pytest.raises(ProviderError) as failed:
        walk(settings, models, service_tier="flex")
    assert failed.value.code == TIMEOUT
    assert models.asked == [("a", None), ("b", None), ("c", "flex")]
