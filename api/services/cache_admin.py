"""An admin's purge of the response cache (POST /admin/cache/purge), audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.services.admin import resolve_user
from api.services.errors import Invalid
from db.models import User
from db.repositories import audit
from db.repositories import response_cache as cache_repo
from workers import logs
from workers.tools import get_tool

PURGE = "response_cache.purge"


def purge(
    session: Session, *, admin: User, tool: str | None = None, user: str | None = None
) -> dict[str, Any]:
    """Remove cached answers: all, a tool's, a user's (id or email), or a user's of one
    tool. Audited in the same transaction. An unknown user matches nothing."""
    if tool is not None and get_tool(tool) is None:
        raise Invalid("Unknown tool.", errors={"json": {"tool": [f"Unknown tool {tool!r}."]}})
    user_id = None
    if user is not None:
        user_id = resolve_user(session, user)
    purged = (
        0 if user is not None and user_id is None else cache_repo.purge(session, tool=tool, user_id=user_id)
    )
    audit.record(
        session,
        actor_id=admin.id,
        actor_email=admin.email,
        action=PURGE,
        target_type="response_cache",
        target_id=tool or "*",
        details={"tool": tool, "user": user, "user_id": str(user_id) if user_id else None, "purged": purged},
        request_id=logs.current_request_id(),
    )
    session.commit()
    return {"purged": purged, "tool": tool, "user": user}
