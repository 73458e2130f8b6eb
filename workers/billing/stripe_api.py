"""The Stripe calls Conveyor makes, through the official SDK.

Every call that creates something carries an idempotency key, so a retry (ours
or the SDK's) never makes a second customer or session. STRIPE_API_BASE points
the SDK at a stand-in in tests, and STRIPE_CA_BUNDLE names the CAs it trusts there.
The SDK (and requests with it) is imported on the first call: every worker process
loads this module with the billing tasks, few call Stripe.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from db.repositories.billing import SubscriptionState
from settings import Settings
from workers.plans import plan_for_price

if TYPE_CHECKING:
    import stripe

TIMEOUT_SECONDS = 15  # a person is waiting on most of these calls
NETWORK_RETRIES = 2


def is_transient(error: BaseException) -> bool:
    """Worth trying again later: Stripe unreachable, overloaded or briefly failing. (Only
    a process that has imported the SDK can hold one of its errors.)"""
    stripe = sys.modules.get("stripe")
    return stripe is not None and isinstance(
        error, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)
    )


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    import stripe

    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
    )


@lru_cache(maxsize=1)
def _sdk_ca_bundle() -> str:
    """The SDK's own CA bundle, read before STRIPE_CA_BUNDLE replaces it."""
    import stripe

    return stripe.ca_bundle_path


def client(settings: Settings) -> stripe.StripeClient:
    import stripe

    # The SDK reads the CA bundle it verifies Stripe with from this module-wide setting
    # (its documented one) at each request, not from the client; a process runs under one
    # Settings, so it holds one value.
    sdk_bundle = _sdk_ca_bundle()  # first, while it still holds the SDK's own
    stripe.ca_bundle_path = settings.stripe_ca_bundle or sdk_bundle
    return _client(settings.stripe_secret_key, settings.stripe_api_base)


def create_customer(settings: Settings, *, user_id: uuid.UUID, email: str, name: str) -> str:
    # One key per user: two checkouts started at once still make one customer.
    customer = client(settings).v1.customers.create(
        {"email": email, "name": name, "metadata": {"user_id": str(user_id)}},
        {"idempotency_key": f"customer:{user_id}"},
    )
    return customer.id


def create_checkout_session(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    customer_id: str,
    price_id: str,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> dict[str, str]:
    session = client(settings).v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": str(user_id),
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"user_id": str(user_id)},
            "subscription_data": {"metadata": {"user_id": str(user_id)}},
        },
        {"idempotency_key": idempotency_key},
    )
    return {"id": session.id, "url": session.url}


def create_portal_session(
    settings: Settings, *, customer_id: str, return_url: str, idempotency_key: str
) -> dict[str, str]:
    session = client(settings).v1.billing_portal.sessions.create(
        {"customer": customer_id, "return_url": return_url}, {"idempotency_key": idempotency_key}
    )
    return {"id": session.id, "url": session.url}


def list_invoices(settings: Settings, *, customer_id: str, limit: int) -> list[dict[str, Any]]:
    page = client(settings).v1.invoices.list({"customer": customer_id, "limit": limit})
    return [_invoice(invoice.to_dict()) for invoice in page.data]


def retrieve_subscription(settings: Settings, subscription_id: str) -> tuple[SubscriptionState, Any]:
    """The subscription as Stripe has it now, and its metadata."""
    subscription = client(settings).v1.subscriptions.retrieve(subscription_id).to_dict()
    return subscription_state(subscription, settings), subscription.get("metadata")


def subscription_state(subscription: dict[str, Any], settings: Settings) -> SubscriptionState:
    """Our terms for a Stripe subscription (its JSON, as a dict)."""
    items = (subscription.get("items") or {}).get("data") or [{}]
    price = (items[0].get("price") or {}).get("id")
    plan = plan_for_price(price, settings)
    # Newer API versions keep the period on the item, older ones on the subscription.
    period_end = subscription.get("current_period_end") or items[0].get("current_period_end")
    return SubscriptionState(
        id=subscription["id"],
        customer_id=id_of(subscription["customer"]),
        status=subscription["status"],
        price_id=price,
        plan=plan.name if plan else None,
        current_period_end=to_datetime(period_end),
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
    )


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills, wherever this API version puts it."""
    direct = invoice.get("subscription")
    if direct:
        return id_of(direct)
    details = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return id_of(details) if details else None


def user_id_of(subscription_metadata: Any) -> uuid.UUID | None:
    """Our user id, as the checkout put it in Stripe's metadata."""
    raw = (subscription_metadata or {}).get("user_id")
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


def format_amount(amount: int, currency: str) -> str:
    """Stripe's smallest-unit amount as a person reads it ("$20.00", "20.00 EUR")."""
    value = f"{amount / 100:,.2f}"
    return f"${value}" if currency.lower() == "usd" else f"{value} {currency.upper()}"


def _invoice(invoice: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": invoice["id"],
        "number": invoice.get("number"),
        "status": invoice.get("status"),
        "currency": invoice.get("currency"),
        "amount_due": invoice.get("amount_due") or 0,
        "amount_paid": invoice.get("amount_paid") or 0,
        "created": to_datetime(invoice.get("created")),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
        "invoice_pdf": invoice.get("invoice_pdf"),
    }


def id_of(value: Any) -> str:
    return value if isinstance(value, str) else value["id"]


def to_datetime(epoch: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None
