"""Stripe: the events it sent us, and the subscriptions they describe.

An event is stored once (its Stripe id is the key) when the webhook arrives and
processed afterwards by a task; `processed_at` is set in the same transaction as
the changes it made, so an event takes effect once however often it is sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, TimestampMixin

# Stripe subscription statuses that keep the plan paid for. past_due keeps it while
# Stripe retries the payment; unpaid, canceled and the incomplete ones do not.
ENTITLED = ("active", "trialing", "past_due")


class StripeEvent(Base):
    __tablename__ = "stripe_events"
    __table_args__ = (
        # The sweep looks only at events still to process.
        Index("ix_stripe_events_unprocessed", "received_at", postgresql_where=text("processed_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime]  # when Stripe made the event
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]  # a worker processes it until then
    processed_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class Subscription(TimestampMixin, Base):
    """A Stripe subscription as Stripe last described it to us."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # sub_…
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    price_id: Mapped[str | None] = mapped_column(String(255))
    plan: Mapped[str | None] = mapped_column(String(32))  # None: a price this deployment does not sell
    current_period_end: Mapped[dt.datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
