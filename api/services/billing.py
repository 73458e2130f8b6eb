"""Billing through Stripe: the plans on sale, checkout and the customer portal, the
account's subscription and invoices, and the intake of Stripe's events.

Stripe is called with no database transaction open (the session is committed
first), and with an idempotency key on every call that creates something.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import stripe
from sqlalchemy.orm import Session

from api.services.errors import OUTAGE_RETRY_AFTER, BadRequest, Conflict, Invalid, Unavailable
from db.models import User
from db.models.billing import ENTITLED
from db.repositories import billing
from settings import Settings
from tasks import billing as billing_tasks
from workers.billing import stripe_api
from workers.catalogue import offered
from workers.plans import ORDER, PLANS, get_plan, models_for, price_id, tools_for

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "Billing is not configured on this server (no STRIPE_SECRET_KEY); every account is on free."


def plans(settings: Settings) -> list[dict[str, Any]]:
    """Every plan and what it allows (nothing secret: no price ids)."""
    return [
        {
            "name": plan.name,
            "title": plan.title,
            "monthly_tokens": plan.monthly_tokens,
            "jobs_per_day": plan.jobs_per_day,
            "running_limit": plan.running_limit,
            "scheduled_limit": plan.scheduled_limit,
            "priority": plan.priority,
            "tools": tools_for(plan),
            "models": models_for(plan, offered(settings), settings),
            "retention_days": plan.retention_days,
            "request_rate": plan.request_rate,
            "purchasable": settings.billing_configured and bool(price_id(plan, settings)),
        }
        for plan in (PLANS[name] for name in ORDER)
    ]


def start_checkout(
    session: Session,
    *,
    user: User,
    settings: Settings,
    plan: str,
    success_url: str,
    cancel_url: str,
    idempotency_key: str | None = None,
) -> dict[str, str]:
    """A Stripe Checkout session that subscribes the user to `plan`."""
    _require_configured(settings)
    wanted = get_plan(plan)
    price = price_id(wanted, settings)
    if not price:
        raise Invalid(
            f"The {plan} plan is not for sale here.",
            errors={"json": {"plan": [f"Not for sale (STRIPE_PRICE_{plan.upper()} is not set)."]}},
        )
    current = billing.current_subscription(session, user_id=user.id)
    if current is not None and current.status in ENTITLED:
        raise Conflict(
            f"You already have a {current.plan or user.plan} subscription ({current.status}); change or "
            "cancel it in the billing portal (POST /api/v1/billing/portal-session)."
        )
    customer_id = _customer_of(session, user=user, settings=settings)
    key = f"checkout:{user.id}:{idempotency_key or uuid.uuid4()}"
    return _call_stripe(
        stripe_api.create_checkout_session,
        settings,
        user_id=user.id,
        customer_id=customer_id,
        price_id=price,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=key,
    )


def open_portal(
    session: Session, *, user: User, settings: Settings, return_url: str, idempotency_key: str | None = None
) -> dict[str, str]:
    """A Stripe customer portal session: payment method, plan changes, cancellation, invoices."""
    _require_configured(settings)
    customer_id = user.stripe_customer_id
    session.commit()  # no transaction open during the call
    if customer_id is None:
        raise Conflict(
            "There is no billing account yet; subscribe first (POST /api/v1/billing/checkout-session)."
        )
    key = f"portal:{user.id}:{idempotency_key or uuid.uuid4()}"
    return _call_stripe(
        stripe_api.create_portal_session,
        settings,
        customer_id=customer_id,
        return_url=return_url,
        idempotency_key=key,
    )


def subscription(session: Session, *, user: User, settings: Settings) -> dict[str, Any]:
    """The account's plan and its subscription as Stripe last told us (no call to Stripe)."""
    _require_configured(settings)
    current = billing.current_subscription(session, user_id=user.id)
    return {
        "plan": user.plan,
        "status": current.status if current else None,
        "subscription_id": current.id if current else None,
        "subscribed_plan": current.plan if current else None,
        "current_period_end": current.current_period_end if current else None,
        "cancel_at_period_end": current.cancel_at_period_end if current else False,
    }


def invoices(session: Session, *, user: User, settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The account's invoices, newest first, from Stripe."""
    _require_configured(settings)
    customer_id = user.stripe_customer_id
    session.commit()
    if customer_id is None:
        return []
    return _call_stripe(stripe_api.list_invoices, settings, customer_id=customer_id, limit=limit)


def receive_stripe_event(
    session: Session, *, settings: Settings, payload: bytes, signature: str | None
) -> bool:
    """Verify a Stripe webhook on its raw body and keep the event for a task to
    process. Returns False for an event already received (Stripe re-sends)."""
    if not settings.stripe_webhook_secret:
        raise Unavailable("Billing is not configured on this server (no STRIPE_WEBHOOK_SECRET).")
    try:
        stripe.Webhook.construct_event(payload, signature or "", settings.stripe_webhook_secret)
    except stripe.SignatureVerificationError:
        raise BadRequest("The Stripe-Signature header does not match the body.") from None
    except ValueError:
        raise BadRequest("The body is not a Stripe event.") from None
    event = json.loads(payload)
    if not _is_stripe_event(event):
        raise BadRequest("The body is not a Stripe event.")
    stored = billing.store_stripe_event(
        session,
        event_id=event["id"],
        type=event["type"],
        created=stripe_api.to_datetime(event["created"]),
        payload=event,
    )
    session.commit()
    if stored:
        billing_tasks.send_soon(event["id"])
    else:
        logger.info("stripe event_id=%s received again; already stored", event["id"])
    return stored


def _is_stripe_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("created"), int)
        and isinstance((event.get("data") or {}).get("object"), dict)
    )


def _customer_of(session: Session, *, user: User, settings: Settings) -> str:
    """The user's Stripe customer, made on first checkout. The idempotency key is the
    user's, so concurrent first checkouts make one customer between them."""
    user_id, email, name, existing = user.id, user.email, user.name, user.stripe_customer_id
    session.commit()
    if existing:
        return existing
    made = _call_stripe(stripe_api.create_customer, settings, user_id=user_id, email=email, name=name)
    customer_id = billing.link_customer(session, user_id=user_id, customer_id=made)
    session.commit()
    return customer_id


def _call_stripe(call, settings: Settings, **kwargs: Any):
    try:
        return call(settings, **kwargs)
    except stripe.IdempotencyError:
        raise Invalid(
            "This Idempotency-Key was already used with a different request body; use a new key.",
            errors={"headers": {"Idempotency-Key": ["Already used with a different body."]}},
        ) from None
    except stripe.StripeError as error:
        logger.error("stripe call %s failed: %r", call.__name__, error)
        raise Unavailable(
            "The payment provider could not complete the request; nothing was charged. Try again shortly.",
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        ) from None


def _require_configured(settings: Settings) -> None:
    if not settings.billing_configured:
        raise Unavailable(NOT_CONFIGURED)
