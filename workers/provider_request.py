"""The one place a job's provider request is made from its tool, input, owner and model.

The worker sends what this builds, the batch lane writes it as a line of its file
(workers/batch_lane/gather.py), and the API builds the same thing at submit to look
the answer up in the response cache (workers/response_cache.py), whose key hashes this
object whole: whatever is added to the request later is in the key without anyone
having to remember it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.catalogue import FLEX
from workers.providers.base import CompletionRequest
from workers.tools.base import Tool


def build(
    tool: Tool,
    input: Mapping[str, Any],
    profile: Mapping[str, Any],
    *,
    model: str,
    service_tier: str | None = None,
) -> CompletionRequest:
    """The first request of a job's run (a JSON repair is a second, built from this one).
    `service_tier`: the job's lane; only flex is a request field (standard is the default)."""
    return CompletionRequest(
        model=model,
        messages=tool.build_messages(input, profile),
        max_output_tokens=tool.max_output_tokens,
        temperature=tool.temperature,
        json_schema=tool.output_schema if tool.output == "json" else None,
        schema_name=tool.name,
        service_tier=FLEX if service_tier == FLEX else None,
    )


def owner_profile(name: str | None, profile: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a tool may personalise with: the owner's name and profile, as the worker reads them."""
    return {"name": name, **(profile or {})} if name is not None else {}
