"""Act on the events Stripe sends: keep each user's subscription and plan as
Stripe has them, and email the owner when a payment fails.

Duplicates: an event is claimed before it is worked on, and marked processed in
the transaction that makes its changes, so it takes effect once.

Order: Stripe does not send events in order, so an event's own copy of a
subscription may be older than one already applied. An event about a
subscription is therefore only a cue: the subscription is read from Stripe as it
is now and saved whole (Stripe's advice for ordering). Syncs of one subscription
take turns (a Redis lock), so a slow read cannot overwrite a newer one.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from db.models import User
from db.redis_client import get_redis, key
from db.repositories import billing
from db.repositories.outbox import PENDING
from db.session import session_scope
from settings import Settings, get_settings
from workers import outbox as loop
from workers.billing import stripe_api
from workers.mail import outbox
from workers.plans import DEFAULT_PLAN, get_plan, rank

logger = logging.getLogger(__name__)

HOLD_SECONDS = 120  # a worker's hold on an event it is processing
SYNC_LOCK_SECONDS = 60
MAX_ATTEMPTS = 10  # the sweep gives up on an event after this many tries
SWEEP_AFTER_SECONDS = 60  # an event not processed this long after it came is re-sent

PROCESSED = "processed"
IGNORED = "ignored"  # a type we do not act on
SKIPPED = "skipped"  # processed already, or another worker holds it


@dataclass
class Outcome:
    status: str
    email_ids: list[uuid.UUID] = field(default_factory=list)  # send after the commit


# Extra work in the transaction that saves a subscription; returns queued email ids.
AfterSync = Callable[[Session, User], list[uuid.UUID]]

EVENT = loop.Kind(
    logger=logger,
    name="stripe events",
    table=billing.STRIPE_EVENTS,
    id_name="stripe event_id",
    load=lambda session, event: (event.type, event.payload["data"]["object"]),
    retries=loop.Retries(max_attempts=MAX_ATTEMPTS),
    labels=lambda item: {"type": item[0]},
    unexpected=PENDING,  # left for a retry
    limit=100,
)


def process(event_id: str, *, settings: Settings | None = None) -> Outcome:
    """Process one stored event, once. Raises what went wrong (the event stays
    unprocessed for a retry)."""
    settings = settings or get_settings()

    def handle(claim: loop.Claim) -> loop.Result:
        event_type, data = claim.item
        return HANDLERS.get(event_type, _ignore)(claim, data, settings)

    result = loop.attempt(EVENT, event_id, hold_seconds=HOLD_SECONDS, transport=handle)
    return result.detail if result is not None else Outcome(SKIPPED)


def due_for_retry() -> list[str]:
    """Events still unprocessed a while after they came (a lost message, or a failure)."""
    return loop.sweep(EVENT, lease_seconds=SWEEP_AFTER_SECONDS)


# ---------------------------------------------------------------- handlers


def _ignore(claim: loop.Claim, data: dict[str, Any], settings: Settings) -> loop.Result:
    return _finish(claim, IGNORED)


def _checkout_completed(claim: loop.Claim, checkout: dict[str, Any], settings: Settings) -> loop.Result:
    subscription_id = checkout.get("subscription")
    if not subscription_id:  # a one-off payment: nothing changes a plan
        return _finish(claim, IGNORED)
    return _sync(claim, stripe_api.id_of(subscription_id), settings)


def _subscription_changed(claim: loop.Claim, subscription: dict[str, Any], settings: Settings) -> loop.Result:
    return _sync(claim, subscription["id"], settings)


def _invoice_paid(claim: loop.Claim, invoice: dict[str, Any], settings: Settings) -> loop.Result:
    subscription_id = stripe_api.invoice_subscription_id(invoice)
    if subscription_id is None:
        return _finish(claim, IGNORED)
    return _sync(claim, subscription_id, settings)


def _invoice_payment_failed(claim: loop.Claim, invoice: dict[str, Any], settings: Settings) -> loop.Result:
    def email_owner(session: Session, user: User) -> list[uuid.UUID]:
        link = settings.billing_portal_url or invoice.get("hosted_invoice_url") or settings.public_base_url
        amount = stripe_api.format_amount(invoice.get("amount_due") or 0, invoice.get("currency") or "usd")
        queued = outbox.enqueue(
            session,
            to=user.email,
            template="payment_failed",
            context={"name": user.name, "amount": amount, "portal_link": link},
            dedupe_key=f"payment_failed:{claim.row_id}",
        )
        return [queued] if queued else []

    subscription_id = stripe_api.invoice_subscription_id(invoice)
    if subscription_id is not None:
        # Stripe has made the subscription past_due by now; the sync saves that.
        return _sync(claim, subscription_id, settings, after=email_owner)
    with session_scope() as session:
        user = billing.user_by_customer(session, customer_id=invoice.get("customer") or "")
        email_ids = email_owner(session, user) if user is not None else []
        return _finish(claim, PROCESSED, session, email_ids)


HANDLERS: dict[str, Callable[[loop.Claim, dict[str, Any], Settings], loop.Result]] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
}


# ---------------------------------------------------------------- the sync


def _sync(
    claim: loop.Claim, subscription_id: str, settings: Settings, *, after: AfterSync | None = None
) -> loop.Result:
    lock = get_redis().lock(
        key("billing", "subscription", subscription_id), timeout=SYNC_LOCK_SECONDS, blocking_timeout=30
    )
    with lock:
        state, metadata = stripe_api.retrieve_subscription(settings, subscription_id)
        with session_scope() as session:
            user = _owner(session, state.customer_id, metadata)
            if user is None:
                logger.warning(
                    "stripe event_id=%s: subscription %s belongs to no user (customer %s); ignored",
                    claim.row_id,
                    subscription_id,
                    state.customer_id,
                )
                return _finish(claim, IGNORED, session)
            billing.save_subscription(session, user_id=user.id, state=state)
            plan = _plan_paid_for(session, user.id)
            if billing.set_plan(session, user_id=user.id, plan=plan):
                logger.info("user_id=%s now on plan %s (stripe event_id=%s)", user.id, plan, claim.row_id)
            return _finish(claim, PROCESSED, session, after(session, user) if after else [])


def _owner(session: Session, customer_id: str, metadata: Any) -> User | None:
    """The user a subscription is for: by its customer, else by the user id the
    checkout put in its metadata (and then the customer is theirs from now on)."""
    user = billing.user_by_customer(session, customer_id=customer_id)
    if user is not None:
        return user
    user_id = stripe_api.user_id_of(metadata)
    user = session.get(User, user_id) if user_id else None
    if user is None:
        return None
    linked = billing.link_customer(session, user_id=user.id, customer_id=customer_id)
    return user if linked == customer_id else None


def _plan_paid_for(session: Session, user_id: uuid.UUID) -> str:
    paid = [get_plan(name) for name in billing.entitled_plans(session, user_id=user_id)]
    return max(paid, key=rank).name if paid else DEFAULT_PLAN


def _finish(
    claim: loop.Claim, status: str, session: Session | None = None, email_ids: list[uuid.UUID] | None = None
) -> loop.Result:
    """Mark the event processed, in `session`'s transaction if given: if another
    worker got there first (its lease ran out on us), this one's changes are undone."""
    result = loop.finish(EVENT, claim, loop.Result(billing.STRIPE_EVENTS.done), session=session)
    return dataclasses.replace(
        result, detail=Outcome(status, email_ids or []) if result.status else Outcome(SKIPPED)
    )
