from marshmallow import Schema, fields

from db.models.webhook import DELIVERY_STATUSES


class WebhookAttemptSchema(Schema):
    attempt = fields.Integer()
    at = fields.DateTime()
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no HTTP answer."})
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)


class WebhookDeliverySchema(Schema):
    id = fields.UUID(metadata={"description": "Sent as the `webhook-id` header; the same on every retry."})
    event = fields.String(metadata={"example": "job.succeeded"})
    url = fields.String()
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    attempts_log = fields.List(fields.Nested(WebhookAttemptSchema), attribute="attempt_log")


class WebhookDeliveryListSchema(Schema):
    items = fields.List(fields.Nested(WebhookDeliverySchema))


class WebhookSecretSchema(Schema):
    secret = fields.String(
        metadata={
            "description": "Verify deliveries with it as Standard Webhooks describes "
            "(HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<body>`).",
            "example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        }
    )
