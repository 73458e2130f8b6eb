"""Closing an account: the owner asked (DELETE /users/me), the API locked every
credential out at once by setting `users.deleted_at`, and this removes the data."""

from __future__ import annotations

import logging
import uuid

from db.redis_client import get_redis
from db.repositories import jobs, refresh_tokens, users
from db.session import session_scope
from workers import cancellation, storage

logger = logging.getLogger(__name__)

# An account still marked for deletion this long after the request lost its task
# (broker down at the time); the sweep sends it again.
RESEND_AFTER_SECONDS = 300


def delete_user(user_id: uuid.UUID) -> bool:
    """Delete a user marked for deletion, and everything that is theirs. Safe to run
    twice: a second run finds no row. Returns whether this run deleted it."""
    with session_scope() as session:
        user = users.get(session, user_id=user_id)
        if user is None:
            return False
        if user.deleted_at is None:
            logger.warning("user_id=%s not deleted: the account was not marked for deletion", user_id)
            return False
        running = jobs.ids_running_for_user(session, user_id=user_id)
    # Stop the provider calls of running jobs now rather than let them finish into
    # rows that no longer exist.
    redis = get_redis()
    for job_id in running:
        cancellation.request(redis, job_id)

    # Stored objects (large outputs, exports, data exports) go before the rows that
    # name them; deleting is idempotent, so a retried task is harmless.
    removed = storage.delete_prefix(f"users/{user_id}/")

    with session_scope() as session:
        refresh_tokens.revoke_all_for_user(session, user_id=user_id)
        # Jobs, API keys, refresh tokens, webhook deliveries and every other row
        # that references the user go with it (ON DELETE CASCADE).
        deleted = users.delete(session, user_id=user_id)
    if deleted:
        logger.info("user_id=%s deleted with %s stored objects", user_id, removed)
    return deleted


def pending_deletions() -> list[uuid.UUID]:
    """Accounts marked for deletion long enough ago that their task must have been lost."""
    with session_scope() as session:
        return users.ids_pending_deletion(session, marked_before_seconds=RESEND_AFTER_SECONDS)
