"""Account tasks: delete a closed account (by id), and the beat's sweep that re-sends
deletions whose message was lost. The logic lives in workers.accounts."""

from __future__ import annotations

import uuid

from celery import shared_task

from workers import accounts, locks

DELETE_USER = "conveyor.accounts.delete_user"


@shared_task(name=DELETE_USER, acks_late=True, ignore_result=True)
def delete_user(user_id: str) -> bool:
    return accounts.delete_user(uuid.UUID(user_id))


@shared_task(name="conveyor.accounts.sweep_deleted", ignore_result=True)
def sweep_deleted() -> int | None:
    return locks.run_exclusively("accounts.sweep_deleted", _sweep_deleted, timeout=300)  # None: held


def _sweep_deleted() -> int:
    ids = accounts.pending_deletions()
    for user_id in ids:
        send_delete(user_id)
    return len(ids)


def send_delete(user_id: uuid.UUID) -> None:
    """Queue the deletion; call after `deleted_at` is committed."""
    delete_user.apply_async(args=[str(user_id)], task_id=f"delete-user-{user_id}")
