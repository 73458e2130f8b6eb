"""All models, imported here so that metadata (and Alembic) sees every table."""

from db.models.job import Job
from db.models.user import User
from db.models.webhook import WebhookAttempt, WebhookDelivery

__all__ = ["Job", "User", "WebhookAttempt", "WebhookDelivery"]
