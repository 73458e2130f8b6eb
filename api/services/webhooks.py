"""The rules for webhooks: which URLs a job may name, the delivery log, the signing secret."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from api.services.errors import Invalid, NotFound
from db.models import User, WebhookDelivery
from db.repositories import jobs, webhooks
from settings import Settings
from tasks import webhooks as webhook_tasks
from workers.webhooks import guard, signing


def check_url(url: str, *, settings: Settings) -> None:
    """Refuse a URL that a worker must not call (SSRF) before the job is accepted."""
    try:
        guard.check(url, settings)
    except guard.UnsafeUrl as problem:
        raise Invalid(f"{problem}.", errors={"json": {"webhook_url": [f"{problem}."]}}) from None


def deliveries(session: Session, *, user: User, job_id: uuid.UUID) -> list[WebhookDelivery]:
    if jobs.get_for_user(session, job_id=job_id, user_id=user.id) is None:
        raise NotFound("No job with this id.")
    return webhooks.for_job(session, job_id=job_id)


def secret(session: Session, *, user: User) -> str:
    """The caller's signing secret, made on first use."""
    value = webhooks.secret_of(session, user_id=user.id, new_secret=signing.new_secret())
    session.commit()
    return value


def rotate_secret(session: Session, *, user: User) -> str:
    """A new signing secret; deliveries from now on are signed with it."""
    value = webhooks.replace_secret(session, user_id=user.id, new_secret=signing.new_secret())
    session.commit()
    return value


def send_now(job_id: uuid.UUID) -> None:
    """A job the API just finished (canceled while queued): send its webhook, if
    it has one, without waiting for the sweep. Call after the commit."""
    webhook_tasks.deliver_for_job(job_id)
