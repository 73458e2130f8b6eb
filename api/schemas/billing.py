from marshmallow import EXCLUDE, Schema, fields, validate

PAID_PLANS = ("pro", "business")
# Stripe fills in `{CHECKOUT_SESSION_ID}` in a success URL, so braces are allowed.
RETURN_URL = validate.And(
    validate.Length(max=2048),
    validate.Regexp(r"^https?://[^\s]+$", error="Must be an absolute http(s) URL."),
)


class PlanSchema(Schema):
    name = fields.String()
    title = fields.String()
    monthly_tokens = fields.Integer(metadata={"description": "Input + output tokens a calendar month (UTC)."})
    jobs_per_day = fields.Integer(metadata={"description": "Jobs submitted a UTC day."})
    running_limit = fields.Integer(metadata={"description": "Jobs running at once; more wait their turn."})
    scheduled_limit = fields.Integer(metadata={"description": "Jobs waiting for their run_at at once."})
    priority = fields.Boolean(metadata={"description": "AI jobs go to the priority queue."})
    tools = fields.List(fields.String())
    models = fields.List(fields.String())
    retention_days = fields.Integer(metadata={"description": "Days finished jobs' results are kept."})
    request_rate = fields.String(metadata={"description": "Job submissions allowed, e.g. 60/minute."})
    purchasable = fields.Boolean(metadata={"description": "A checkout can be started for it."})


class PlanListSchema(Schema):
    items = fields.List(fields.Nested(PlanSchema))


class CheckoutArgsSchema(Schema):
    plan = fields.String(required=True, validate=validate.OneOf(PAID_PLANS))
    success_url = fields.String(
        required=True,
        validate=RETURN_URL,
        metadata={"description": "Where Stripe sends the customer after paying."},
    )
    cancel_url = fields.String(
        required=True,
        validate=RETURN_URL,
        metadata={"description": "Where Stripe sends them if they back out."},
    )


class PortalArgsSchema(Schema):
    return_url = fields.String(
        required=True, validate=RETURN_URL, metadata={"description": "Where the portal's back link goes."}
    )


class StripeIdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Retry-safe: the same key returns the same Stripe session."},
    )


class RedirectSchema(Schema):
    id = fields.String()
    url = fields.String(metadata={"description": "Send the customer's browser here."})


class SubscriptionSchema(Schema):
    plan = fields.String(metadata={"description": "The plan the account is on now."})
    status = fields.String(
        allow_none=True,
        metadata={"description": "Stripe's status (active, past_due, canceled…); null: never subscribed."},
    )
    subscription_id = fields.String(allow_none=True)
    subscribed_plan = fields.String(
        allow_none=True, metadata={"description": "The plan the subscription is for."}
    )
    current_period_end = fields.DateTime(allow_none=True)
    cancel_at_period_end = fields.Boolean()


class InvoiceSchema(Schema):
    id = fields.String()
    number = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    amount_due = fields.Integer(metadata={"description": "In the currency's smallest unit (cents)."})
    amount_paid = fields.Integer()
    created = fields.DateTime(allow_none=True)
    hosted_invoice_url = fields.String(allow_none=True)
    invoice_pdf = fields.String(allow_none=True)


class InvoiceListSchema(Schema):
    items = fields.List(fields.Nested(InvoiceSchema))


class InvoiceArgsSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ReceivedSchema(Schema):
    received = fields.Boolean()
