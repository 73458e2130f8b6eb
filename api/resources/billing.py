from api.auth import current_settings, get_current_user, jwt_login_required
from api.input_gate import Blueprint
from api.openapi import documented
from api.schemas.billing import (
    CheckoutArgsSchema,
    InvoiceArgsSchema,
    InvoiceListSchema,
    PlanListSchema,
    PortalArgsSchema,
    RedirectSchema,
    StripeIdempotencyHeaderSchema,
    SubscriptionSchema,
)
from api.services import billing
from db.session import db_session

# Billing is managing the account: an access token, never an API key (api.auth).
blp = Blueprint("billing", __name__, description="Plans, Stripe checkout and the customer portal.")


@blp.route("/plans", methods=["GET"])
@blp.response(200, PlanListSchema)
def list_plans():
    """Every plan and what it allows; public."""
    return {"items": billing.plans(current_settings())}


@blp.route("/checkout-session", methods=["POST"])
@documented(statuses={409})
@jwt_login_required
@blp.arguments(CheckoutArgsSchema())
@blp.arguments(StripeIdempotencyHeaderSchema(), location="headers", as_kwargs=True)
@blp.response(201, RedirectSchema)
def checkout(data, idempotency_key=None):
    """Start a Stripe Checkout for a paid plan; send the browser to `url`."""
    return billing.start_checkout(
        db_session(),
        user=get_current_user(),
        settings=current_settings(),
        idempotency_key=idempotency_key,
        **data,
    )


@blp.route("/portal-session", methods=["POST"])
@documented(statuses={409})
@jwt_login_required
@blp.arguments(PortalArgsSchema())
@blp.arguments(StripeIdempotencyHeaderSchema(), location="headers", as_kwargs=True)
@blp.response(201, RedirectSchema)
def portal(data, idempotency_key=None):
    """Open the Stripe customer portal (payment method, plan, cancel, invoices)."""
    return billing.open_portal(
        db_session(),
        user=get_current_user(),
        settings=current_settings(),
        idempotency_key=idempotency_key,
        **data,
    )


@blp.route("/subscription", methods=["GET"])
@jwt_login_required
@blp.response(200, SubscriptionSchema)
def subscription():
    """The account's plan and subscription status."""
    return billing.subscription(db_session(), user=get_current_user(), settings=current_settings())


@blp.route("/invoices", methods=["GET"])
@jwt_login_required
@blp.arguments(InvoiceArgsSchema(), location="query")
@blp.response(200, InvoiceListSchema)
def invoices(args):
    """The account's Stripe invoices, newest first."""
    items = billing.invoices(db_session(), user=get_current_user(), settings=current_settings(), **args)
    return {"items": items}
