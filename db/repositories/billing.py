"""Stripe events, subscriptions and the Stripe customer of a user."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models.billing import ENTITLED, StripeEvent, Subscription
from db.models.user import User
from db.repositories.outbox import ProcessedTable


def store_stripe_event(
    session: Session, *, event_id: str, type: str, created: dt.datetime, payload: dict[str, Any]
) -> bool:
    """Keep an event Stripe sent; False when it was already here (a re-delivery)."""
    stored = session.scalar(
        insert(StripeEvent)
        .values(id=event_id, type=type, created=created, payload=payload)
        .on_conflict_do_nothing(index_elements=[StripeEvent.id])
        .returning(StripeEvent.id)
    )
    return stored is not None


# Claimed, recorded and swept by db.repositories.outbox.
STRIPE_EVENTS = ProcessedTable(StripeEvent, arrived_at="received_at", order_by="created")


def get_stripe_event(session: Session, *, event_id: str) -> StripeEvent | None:
    return session.get(StripeEvent, event_id)


# ---------------------------------------------------------------- customers


def user_by_customer(session: Session, *, customer_id: str) -> User | None:
    return session.scalar(select(User).where(User.stripe_customer_id == customer_id))


def link_customer(session: Session, *, user_id: uuid.UUID, customer_id: str) -> str:
    """Give the user this Stripe customer unless they already have one; returns the
    user's customer id either way (the first one set wins)."""
    session.execute(
        update(User)
        .where(User.id == user_id, User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    return session.scalar(select(User.stripe_customer_id).where(User.id == user_id))


# ---------------------------------------------------------------- subscriptions


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as Stripe describes it, in the terms we keep."""

    id: str
    customer_id: str
    status: str
    price_id: str | None
    plan: str | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool


def save_subscription(session: Session, *, user_id: uuid.UUID, state: SubscriptionState) -> None:
    values = {
        "user_id": user_id,
        "customer_id": state.customer_id,
        "status": state.status,
        "price_id": state.price_id,
        "plan": state.plan,
        "current_period_end": state.current_period_end,
        "cancel_at_period_end": state.cancel_at_period_end,
    }
    session.execute(
        insert(Subscription)
        .values(id=state.id, **values)
        .on_conflict_do_update(index_elements=[Subscription.id], set_=values | {"updated_at": func.now()})
    )


def current_subscription(session: Session, *, user_id: uuid.UUID) -> Subscription | None:
    """The subscription that matters most: one that pays for a plan, else the latest."""
    entitled_first = case((Subscription.status.in_(ENTITLED), 0), else_=1)
    return session.scalar(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(entitled_first, Subscription.updated_at.desc())
        .limit(1)
    )


def entitled_plans(session: Session, *, user_id: uuid.UUID) -> list[str]:
    """The plans the user's live subscriptions pay for."""
    return list(
        session.scalars(
            select(Subscription.plan).where(
                Subscription.user_id == user_id,
                Subscription.status.in_(ENTITLED),
                Subscription.plan.is_not(None),
            )
        )
    )


def set_plan(session: Session, *, user_id: uuid.UUID, plan: str) -> bool:
    """Put the user on `plan`; False when they already were."""
    result = session.execute(update(User).where(User.id == user_id, User.plan != plan).values(plan=plan))
    return result.rowcount == 1
