from flask import request

from api.auth import current_settings
from api.input_gate import Blueprint
from api.openapi import documented
from api.schemas.billing import ReceivedSchema
from api.services import billing
from db.session import db_session

blp = Blueprint("stripe_webhooks", __name__, description="Events from Stripe.")


@blp.route("/webhooks/stripe", methods=["POST"])
@documented(statuses={400, 413})
@blp.response(200, ReceivedSchema)
def receive():
    """Stripe's events, signed (`Stripe-Signature`); stored, then processed by a task."""
    # The signature covers the exact bytes Stripe sent: read them raw, never re-serialised.
    billing.receive_stripe_event(
        db_session(),
        settings=current_settings(),
        payload=request.get_data(cache=False),
        signature=request.headers.get("Stripe-Signature"),
    )
    return {"received": True}
