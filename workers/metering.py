"""Usage metering: what a job is expected to use (the quota reservation), what its
provider calls did use (the ledger), and the daily roll-up of the ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db.models.job import CANCELED, SUCCEEDED
from db.repositories import usage
from db.session import session_scope
from workers import catalogue
from workers.providers.base import Completion, estimate_tokens
from workers.tools.base import Tool

# A job is billed when it produced something for the user: a result, or the text a
# canceled job had written. The jobs_settle_usage trigger (migration 0005) applies
# the same rule to the quota.
BILLED_STATUSES = (SUCCEEDED, CANCELED)


def estimate_job_tokens(tool: Tool, input: Mapping[str, Any], profile: Mapping[str, Any]) -> int:
    """The most a job is expected to use: its prompt as sent, plus the tool's output cap.
    (A JSON tool's repair call can use more; the quota is settled with what was used.)"""
    prompt = sum(estimate_tokens(message["content"]) for message in tool.build_messages(input, profile))
    return prompt + tool.max_output_tokens


def job_usage(job: Any) -> dict[str, Any]:
    """A job's `usage` as clients see it (the API's job and the webhook's `data`): its
    tokens and cost, the lane it ran on, and whether the response cache answered it."""
    return {
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
        "cost_micros": job.cost_micros,
        "lane": job_lane(job),
        "cached": bool(job.cached),
    }


def job_lane(job: Any) -> str:
    """The lane a job is held on (batch) or ran on; before it ran, the one it asked for."""
    return job.lane or job.service_tier or catalogue.STANDARD


def ledger_calls(
    calls: Sequence[Completion], requested_model: str, prices: catalogue.Catalogue
) -> list[usage.Call]:
    """The ledger's view of an attempt's provider calls, each priced by the model that
    answered on the lane it ran on, and at that model's standard prices (what the lane saved)."""
    priced = []
    for call in calls:
        model = call.model or requested_model
        cost = prices.cost_micros(model, call.input_tokens, call.output_tokens, lane=call.lane)
        standard = prices.cost_micros(model, call.input_tokens, call.output_tokens)
        priced.append(usage.Call(model, call.input_tokens, call.output_tokens, cost, call.lane, standard))
    return priced


def roll_up(*, batch: int = 10_000) -> int:
    """Fold every ledger row not yet counted into usage_daily, a batch per transaction."""
    total = 0
    while True:
        with session_scope() as session:
            done = usage.roll_up(session, batch=batch)
        total += done
        if done < batch:
            return total
