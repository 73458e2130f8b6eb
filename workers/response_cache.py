"""The response cache: an answer served again for exactly the same provider request.

Exact, never semantic: the key is the SHA-256 of a canonical JSON of the whole
`CompletionRequest` a job sends (workers/provider_request.py builds it, for the worker
and for the API's look-up alike), with the tool's name and version, the provider it
goes to, and the owner's id unless the tool is declared not personalised. Every field
of the request is in the key because the object itself is hashed, not a list of
chosen parameters: a field added to the request later changes the key without anyone
remembering to add it (tests/workers/test_response_cache.py changes each one).

A tool opts in with `cache_ttl`; conversation tools cannot. The API looks up at submit
(a hit finishes the job there, without a worker); a worker stores a succeeded job's
answer. Entries are rows in Postgres (db/models/response_cache.py says why).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from db.repositories import response_cache as cache_repo
from db.session import session_scope
from settings import Settings
from workers import catalogue
from workers.providers.base import CompletionRequest
from workers.tools.base import Tool

logger = logging.getLogger(__name__)

# A submit's `cache`: look up, and store on a miss; neither; or store without looking up.
DEFAULT = "default"
BYPASS = "bypass"
REFRESH = "refresh"
MODES = (DEFAULT, BYPASS, REFRESH)


def applies(tool: Tool, settings: Settings) -> bool:
    """Whether this tool's answers are cached at all here."""
    return settings.response_cache == "on" and tool.cache_ttl is not None


def key(request: CompletionRequest, *, tool: Tool, user_id: uuid.UUID, settings: Settings) -> str:
    """The entry's key: everything that decides the answer, and whose it is."""
    material: dict[str, Any] = {
        "request": dataclasses.asdict(request),
        "tool": tool.name,
        "tool_version": tool.version,
        # The same model name on another endpoint is another model.
        "provider": settings.ai_provider,
        "endpoint": _endpoint(request.model, settings),
        "user": None if not tool.personalised else str(user_id),
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _endpoint(model: str, settings: Settings) -> str:
    """Where the model is served: its catalogue endpoint, else OPENAI_BASE_URL."""
    if settings.ai_provider != "openai":
        return ""
    endpoint = catalogue.get_catalogue(settings).endpoint(model)
    return endpoint.base_url if endpoint is not None else settings.openai_base_url


def store(
    *,
    request: CompletionRequest,
    tool: Tool,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    output: dict[str, Any],
    input_tokens: int,
    output_tokens: int,
    cost_micros: int,
    settings: Settings,
) -> bool:
    """Keep a succeeded job's answer under the key of the request that produced it.
    After the job's outcome is committed: a cache that cannot be written loses a saving,
    never a result. Whether it was stored."""
    if tool.cache_ttl is None:
        return False
    entry_key = key(request, tool=tool, user_id=user_id, settings=settings)
    try:
        with session_scope() as session:
            cache_repo.put(
                session,
                key=entry_key,
                tool=tool.name,
                user_id=user_id if tool.personalised else None,
                model=request.model,
                output=output,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_micros=cost_micros,
                source_job_id=job_id,
                ttl_seconds=tool.cache_ttl,
            )
    except SQLAlchemyError:
        logger.warning("job_id=%s its answer was not cached", job_id, exc_info=True)
        return False
    return True


def sweep(settings: Settings) -> int:
    """The beat's clean-up: expired entries, then the oldest beyond
    RESPONSE_CACHE_MAX_ENTRIES. How many went."""
    with session_scope() as session:
        removed = cache_repo.sweep(session, max_entries=settings.response_cache_max_entries)
    if removed:
        logger.info("removed %s response-cache entries (expired, or beyond the bound)", removed)
    return removed
