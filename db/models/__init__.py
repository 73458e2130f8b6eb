"""All models, imported here so that metadata (and Alembic) sees every table."""

from db.models.account import ApiKey, RefreshToken
from db.models.audit import AuditEntry
from db.models.batch import Batch
from db.models.billing import StripeEvent, Subscription
from db.models.bulk_operation import BulkOperation
from db.models.conversation import Conversation, ConversationMessage
from db.models.email import EmailOutbox
from db.models.export import Export
from db.models.job import Job
from db.models.provider_batch import ProviderBatch
from db.models.response_cache import ResponseCacheEntry, ResponseCacheLookup
from db.models.usage import DailyJobCount, UsageCounter, UsageDaily, UsageLedger
from db.models.user import User
from db.models.webhook import WebhookAttempt, WebhookDelivery

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Batch",
    "BulkOperation",
    "Conversation",
    "ConversationMessage",
    "DailyJobCount",
    "EmailOutbox",
    "Export",
    "Job",
    "ProviderBatch",
    "RefreshToken",
    "ResponseCacheEntry",
    "ResponseCacheLookup",
    "StripeEvent",
    "Subscription",
    "UsageCounter",
    "UsageDaily",
    "UsageLedger",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
]
