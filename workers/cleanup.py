"""The beat's clean-ups: stored data past its retention, accounts never verified,
expired refresh tokens.

Every clean-up deletes the stored objects first and the rows after, each row with
a compare-and-set: if the store fails, the row still names its object and the
next run tries again; if the run dies between the two, the next run finds the
row and deletes an object that is already gone (a no-op). Run twice, it does
nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db.repositories import refresh_tokens, retention
from db.session import session_scope
from settings import Settings
from workers.plans import DEFAULT_PLAN, PLANS, get_plan
from workers.storage import Storage, StorageError, get_storage, user_prefix

logger = logging.getLogger(__name__)

BATCH = 200
TOKEN_BATCH = 1000  # rows only, no stored objects: one DELETE per batch
DEFAULT_RETENTION_DAYS = 30


@dataclass
class Purged:
    outputs: int = 0
    exports: int = 0
    accounts: int = 0
    objects: int = 0
    refresh_tokens: int = 0

    def __bool__(self) -> bool:
        return bool(self.outputs or self.exports or self.accounts or self.refresh_tokens)


def retention_policy() -> tuple[dict[str, int], int]:
    """Days each plan keeps results, and the days for a plan name not in the table."""
    days = {name: getattr(plan, "retention_days", DEFAULT_RETENTION_DAYS) for name, plan in PLANS.items()}
    return days, getattr(get_plan(None), "retention_days", DEFAULT_RETENTION_DAYS)


def purge_expired_results(settings: Settings) -> Purged:
    """Outputs and exports older than their owner's plan keeps them: the stored
    objects, then the row's output (jobs) or the row itself (exports)."""
    days, default_days = retention_policy()
    storage = get_storage(settings)
    purged = Purged()
    purged.outputs, objects = _purge_held(
        storage,
        held=lambda session: retention.outputs_past_retention(
            session, retention_days=days, default_days=default_days, limit=BATCH
        ),
        remove=lambda session, item: retention.clear_output(session, job_id=item.id),
    )
    purged.objects += objects
    purged.exports, objects = _purge_held(
        storage,
        held=lambda session: retention.exports_past_retention(
            session, retention_days=days, default_days=default_days, limit=BATCH
        ),
        remove=lambda session, item: retention.delete_export(session, export_id=item.id),
    )
    purged.objects += objects
    if purged:
        logger.info(
            "retention: %s outputs and %s exports removed (%s stored objects)",
            purged.outputs,
            purged.exports,
            purged.objects,
        )
    return purged


def _purge_held(
    storage: Storage,
    *,
    held: Callable[[Session], Sequence[Any]],
    remove: Callable[[Session, Any], object],
) -> tuple[int, int]:
    """Each batch of `held` rows: its stored object deleted, then the row `remove`d (None:
    another run did it). Returns (rows removed, objects deleted); stops when a batch
    removes nothing, so the rest waits for the store to answer."""
    rows = objects = 0
    while True:
        with session_scope() as session:
            batch = held(session)
        before = rows
        for item in batch:
            if item.storage_key and not _delete(storage, item.storage_key):
                continue
            objects += bool(item.storage_key)
            with session_scope() as session:
                rows += remove(session, item) is not None
        if len(batch) < BATCH or rows == before:
            return rows, objects


def purge_unverified_accounts(settings: Settings, *, now: dt.datetime | None = None) -> Purged:
    """Accounts whose email was never verified within UNVERIFIED_ACCOUNT_DAYS: their
    stored objects, then the user row (jobs, conversations and exports cascade).
    Admins and accounts on a paid plan are kept."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=settings.unverified_account_days)
    storage = get_storage(settings)
    purged = Purged()
    while True:
        with session_scope() as session:
            user_ids = retention.unverified_before(
                session, cutoff=cutoff, default_plan=DEFAULT_PLAN, limit=BATCH
            )
        before = purged.accounts
        for user_id in user_ids:
            try:
                purged.objects += storage.delete_prefix(user_prefix(user_id))
            except (StorageError, OSError):
                logger.warning("user_id=%s objects not deleted; retried next run", user_id, exc_info=True)
                continue
            with session_scope() as session:
                purged.accounts += retention.delete_unverified(
                    session, user_id=user_id, cutoff=cutoff, default_plan=DEFAULT_PLAN
                )
        if len(user_ids) < BATCH or purged.accounts == before:
            break
    if purged:
        logger.info("removed %s accounts never verified (%s stored objects)", purged.accounts, purged.objects)
    return purged


def purge_expired_refresh_tokens(settings: Settings, *, now: dt.datetime | None = None) -> Purged:
    """Refresh-token rows that expired more than REFRESH_TOKEN_RETENTION_DAYS ago, a
    batch per transaction. An expired token is refused before its row is read, so
    nothing needs them; a token still valid is never removed."""
    days = settings.refresh_token_retention_days
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)
    purged = Purged()
    while True:
        with session_scope() as session:
            removed = refresh_tokens.delete_expired(session, expired_before=cutoff, limit=TOKEN_BATCH)
        purged.refresh_tokens += removed
        if removed < TOKEN_BATCH:
            break
    if purged:
        logger.info("removed %s refresh tokens expired more than %s days ago", purged.refresh_tokens, days)
    return purged


def _delete(storage: Storage, key: str) -> bool:
    try:
        storage.delete(key)
    except (StorageError, OSError):
        logger.warning("stored object %s not deleted; retried next run", key, exc_info=True)
        return False
    return True
