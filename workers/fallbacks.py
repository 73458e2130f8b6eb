"""Fallbacks: when a job's model fails, the job goes on with the next model of its chain.

The chain is the job's model, then the fallbacks listed by the first of these that lists
any: the tool, the user's plan, the catalogue's entry for the model (across providers
too); models the plan may not use, and repeats, are left out. A call falls back when it
failed with a provider error (5xx, no connection, credentials), a rate limit that
outlasted the provider's retries, or a timeout; never for a request the provider refused
as invalid (400) or under its content policy, and never once the answer had started
streaming to the client. A model whose breaker is open (workers/breaker.py) is skipped,
except the last of the chain, which is always tried (so a job with no fallbacks never
waits on the breaker). Each model tried is recorded as
an attempt `{model, outcome, error_code}` on the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from settings import Settings
from workers import catalogue, metrics
from workers.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from workers.plans import Plan, allows_model
from workers.providers.base import (
    PROVIDER_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    Completion,
    CompletionRequest,
    ProviderError,
)
from workers.tools.base import Tool

FALLS_BACK = (PROVIDER_ERROR, RATE_LIMITED, TIMEOUT)
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"  # its breaker was open
BREAKER_OPEN = "breaker_open"


def chain(model: str, *, tool: Tool, plan: Plan, settings: Settings) -> list[str]:
    """The models a job of `model` tries, in order."""
    listed = catalogue.get_catalogue(settings).model(model)
    fallbacks = tool.fallbacks or plan.fallbacks or (listed.fallbacks if listed is not None else ())
    models = [model]
    for other in fallbacks:
        if other not in models and allows_model(plan, other, settings):
            models.append(other)
    return models


@dataclass
class Attempts:
    """The models one run of a job tried, as the job shows them."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, model: str, outcome: str, error_code: str | None = None) -> None:
        self.items.append({"model": model, "outcome": outcome, "error_code": error_code})

    @property
    def answered_by(self) -> str | None:
        return next((item["model"] for item in self.items if item["outcome"] == SUCCEEDED), None)


def complete(
    request: CompletionRequest,
    models: list[str],
    call: Callable[[CompletionRequest], Completion],
    *,
    breaker: Breaker,
    models_of: catalogue.Catalogue,
    attempts: Attempts,
) -> Completion:
    """`call(request)` on each model of `models` in turn until one answers. Raises the
    last model's error, or at once an error that must not fall back."""
    for index, model in enumerate(models):
        last = index == len(models) - 1
        provider = models_of.provider_of(model)
        state = CLOSED if last else breaker.admit(provider, model)
        if state == OPEN:
            attempts.add(model, SKIPPED, BREAKER_OPEN)
            metrics.fallback(from_model=model, to_model=models[index + 1], reason=BREAKER_OPEN)
            continue
        try:
            completion = call(_for_model(request, model, models_of))
        except ProviderError as error:
            if error.code not in FALLS_BACK or error.partial is not None:
                attempts.add(model, FAILED, error.code)
                raise
            breaker.failed(provider, model)
            attempts.add(model, FAILED, error.code)
            if last:
                raise
            metrics.fallback(from_model=model, to_model=models[index + 1], reason=error.code)
            continue
        if state == HALF_OPEN:
            breaker.succeeded(provider, model)
        attempts.add(model, SUCCEEDED)
        return completion
    raise AssertionError("unreachable: the last model is always called")


def _for_model(request: CompletionRequest, model: str, models_of: catalogue.Catalogue) -> CompletionRequest:
    """The request for another model: on the flex lane only if that model has one."""
    listed = models_of.model(model)
    flex = request.service_tier == catalogue.FLEX and listed is not None and listed.supports(catalogue.FLEX)
    return replace(request, model=model, service_tier=catalogue.FLEX if flex else None)
