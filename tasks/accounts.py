"""Account tasks: delete a closed account (by id), the beat's sweep that re-sends
deletions whose message was lost (workers.accounts), and the password reset email
(workers.password_reset)."""

from __future__ import annotations

import uuid

from celery import shared_task

from tasks import email as email_tasks
from workers import accounts, locks, password_reset

DELETE_USER = "conveyor.accounts.delete_user"
SEND_PASSWORD_RESET = "conveyor.accounts.send_password_reset"  # noqa: S105 - a task name


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


@shared_task(name=SEND_PASSWORD_RESET, acks_late=True, ignore_result=True)
def send_password_reset(email: str, request_id: str) -> bool:
    """Email a reset link if the address has an account; safe to run twice (one email a request)."""
    email_id = password_reset.queue_email(email, request_id=request_id)
    if email_id is not None:
        email_tasks.send_soon([email_id])
    return email_id is not None


def request_password_reset(email: str) -> None:
    """Queue the lookup and the email; the same work whether the account exists or not."""
    send_password_reset.apply_async(args=[email, uuid.uuid4().hex])
