"""The API's side of the response cache (workers/response_cache.py): the look-up at
submit, and what it saved for GET /usage and GET /admin/stats (its purge: cache_admin.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from db.models import User
from db.models.response_cache import ResponseCacheEntry
from db.repositories import response_cache as cache_repo
from db.repositories.users import Caller
from settings import Settings
from workers import provider_request, response_cache
from workers.tools.base import Tool


def look_up(
    session: Session,
    *,
    definition: Tool,
    input: dict[str, Any],
    model: str,
    service_tier: str | None = None,
    user: User | Caller,
    settings: Settings,
) -> ResponseCacheEntry | None:
    """The answer kept for this request, if any. The request is built by the same code the
    worker sends with, from the owner's profile as it is now: what the worker would send
    if it ran the job at once."""
    profile = provider_request.owner_profile(user.name, user.profile)
    request = provider_request.build(definition, input, profile, model=model, service_tier=service_tier)
    key = response_cache.key(request, tool=definition, user_id=user.id, settings=settings)
    return cache_repo.get(session, key=key)


def savings(
    session: Session, *, start: dt.datetime, end: dt.datetime, user_id: uuid.UUID | None = None
) -> dict[str, int]:
    """Hits, misses and what the hits saved, from `start` to `end` (a user's, or everyone's)."""
    return dataclasses.asdict(cache_repo.savings(session, start=start, end=end, user_id=user_id))
