"""Processing Stripe's events (workers.billing.stripe_events, called as the task calls it):
each takes effect once, events out of order end in Stripe's current state, a plan
follows its subscription at once, and a failed payment emails the owner."""

import dataclasses
import datetime as dt
import json
import uuid

import pytest
import stripe
from celery import current_app
from sqlalchemy import select, update

from db.models import EmailOutbox, StripeEvent, Subscription, User
from db.repositories import billing
from db.session import session_scope
from tasks.billing import process_stripe_event, sweep_stripe_events
from tests import rows
from workers.billing import stripe_events

PRO, BUSINESS = "price_pro_test", "price_business_test"


@pytest.fixture
def customer(stripe_settings):
    """A user who has been through checkout: they have a Stripe customer."""
    customer_id = f"cus_{uuid.uuid4().hex[:10]}"
    return rows.make_user(verified=False, stripe_customer_id=customer_id), customer_id


def store(
    fake_stripe, type: str, obj: dict, *, event_id: str | None = None, created: int | None = None
) -> str:
    """What the webhook intake does: keep the event."""
    event = json.loads(fake_stripe.event(type, obj, event_id=event_id, created=created))
    with session_scope() as session:
        billing.store_stripe_event(
            session,
            event_id=event["id"],
            type=event["type"],
            created=dt.datetime.fromtimestamp(event["created"], dt.UTC),
            payload=event,
        )
    return event["id"]


def user_state(user_id: uuid.UUID) -> tuple[str, str | None, str | None]:
    with session_scope() as session:
        plan = session.scalar(select(User.plan).where(User.id == user_id))
        sub = session.scalar(select(Subscription).where(Subscription.user_id == user_id))
        return plan, sub.status if sub else None, sub.plan if sub else None


def emails(template: str = "payment_failed") -> list[EmailOutbox]:
    with session_scope() as session:
        return list(session.scalars(select(EmailOutbox).where(EmailOutbox.template == template)))


def test_checkout_completed_puts_the_user_on_the_plan(fake_stripe, stripe_settings, customer):
    user_id, customer_id = customer
    fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    checkout = {"id": "cs_1", "object": "checkout.session", "customer": customer_id, "subscription": "sub_1"}
    event_id = store(fake_stripe, "checkout.session.completed", checkout)

    assert stripe_events.process(event_id, settings=stripe_settings).status == "processed"
    assert user_state(user_id) == ("pro", "active", "pro")
    with session_scope() as session:
        assert session.get(StripeEvent, event_id).processed_at is not None


def test_the_same_event_is_processed_once(fake_stripe, stripe_settings, customer):
    _, customer_id = customer
    sub = fake_stripe.put_subscription("sub_1", customer=customer_id, status="past_due", price=PRO)
    invoice = fake_stripe.add_invoice(customer=customer_id, subscription="sub_1", amount=2000, status="open")
    event_id = store(fake_stripe, "invoice.payment_failed", invoice)
    for _ in range(9):  # re-deliveries are refused at the door
        store(fake_stripe, "invoice.payment_failed", invoice, event_id=event_id)

    outcomes = [stripe_events.process(event_id, settings=stripe_settings).status for _ in range(10)]
    assert outcomes == ["processed"] + ["skipped"] * 9
    assert len(emails()) == 1
    assert len(fake_stripe.requests_to("GET", f"/v1/subscriptions/{sub['id']}")) == 1


def test_events_out_of_order_end_in_stripes_current_state(fake_stripe, stripe_settings, customer):
    """Upgraded from pro to business: the `updated` event is processed before the
    older `created` one, whose payload still says pro."""
    user_id, customer_id = customer
    created = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    older = store(fake_stripe, "customer.subscription.created", created, created=1_800_000_000)
    updated = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=BUSINESS)
    newer = store(fake_stripe, "customer.subscription.updated", updated, created=1_800_000_060)

    stripe_events.process(newer, settings=stripe_settings)
    assert user_state(user_id) == ("business", "active", "business")
    stripe_events.process(older, settings=stripe_settings)
    assert user_state(user_id) == ("business", "active", "business")  # not back to pro


def test_a_canceled_subscription_seen_late_still_ends_on_free(fake_stripe, stripe_settings, customer):
    user_id, customer_id = customer
    live = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    activated = store(fake_stripe, "customer.subscription.updated", live)
    deleted = fake_stripe.put_subscription("sub_1", customer=customer_id, status="canceled", price=PRO)
    gone = store(fake_stripe, "customer.subscription.deleted", deleted)

    stripe_events.process(gone, settings=stripe_settings)
    stripe_events.process(activated, settings=stripe_settings)  # arrives after the deletion
    assert user_state(user_id) == ("free", "canceled", "pro")


def test_a_failed_payment_marks_past_due_and_emails_the_owner(fake_stripe, stripe_settings, customer):
    user_id, customer_id = customer
    fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    stripe_events.process(
        store(fake_stripe, "customer.subscription.created", fake_stripe.subscriptions["sub_1"]),
        settings=stripe_settings,
    )

    fake_stripe.put_subscription(
        "sub_1", customer=customer_id, status="past_due", price=PRO
    )  # as Stripe does
    invoice = fake_stripe.add_invoice(customer=customer_id, subscription="sub_1", amount=2000, status="open")
    outcome = stripe_events.process(
        store(fake_stripe, "invoice.payment_failed", invoice), settings=stripe_settings
    )

    assert outcome.status == "processed"
    assert user_state(user_id) == ("pro", "past_due", "pro")  # the plan holds while Stripe retries
    [email] = emails()
    assert outcome.email_ids == [email.id]
    with session_scope() as session:
        address = session.scalar(select(User.email).where(User.id == user_id))
    assert email.to_address == address
    assert email.context == {"name": "Ada", "amount": "$20.00", "portal_link": invoice["hosted_invoice_url"]}

    fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    paid = store(fake_stripe, "invoice.paid", {**invoice, "status": "paid"})
    assert stripe_events.process(paid, settings=stripe_settings).status == "processed"
    assert user_state(user_id) == ("pro", "active", "pro")


def test_the_portal_link_setting_is_used_in_the_email(fake_stripe, stripe_settings, customer):
    _, customer_id = customer
    configured = dataclasses.replace(stripe_settings, billing_portal_url="https://app.example.com/billing")
    invoice = fake_stripe.add_invoice(customer=customer_id, subscription=None, amount=1999, status="open")
    stripe_events.process(store(fake_stripe, "invoice.payment_failed", invoice), settings=configured)
    [email] = emails()
    assert email.context["portal_link"] == "https://app.example.com/billing"
    assert email.context["amount"] == "$19.99"


def test_a_subscription_is_found_by_the_checkout_metadata_when_the_customer_is_new(
    fake_stripe, stripe_settings
):
    user_id = rows.make_user(email="meta@example.com", name="Bo", verified=False)
    sub = fake_stripe.put_subscription(
        "sub_m", customer="cus_new", status="active", price=BUSINESS, metadata={"user_id": str(user_id)}
    )
    stripe_events.process(store(fake_stripe, "customer.subscription.created", sub), settings=stripe_settings)
    assert user_state(user_id) == ("business", "active", "business")
    with session_scope() as session:
        assert session.scalar(select(User.stripe_customer_id).where(User.id == user_id)) == "cus_new"


def test_events_about_strangers_and_unknown_types_are_ignored(fake_stripe, stripe_settings):
    sub = fake_stripe.put_subscription("sub_s", customer="cus_stranger", status="active", price=PRO)
    stranger = store(fake_stripe, "customer.subscription.created", sub)
    other = store(fake_stripe, "customer.created", {"id": "cus_x", "object": "customer"})
    assert stripe_events.process(stranger, settings=stripe_settings).status == "ignored"
    assert stripe_events.process(other, settings=stripe_settings).status == "ignored"
    with session_scope() as session:
        assert all(e.processed_at for e in session.scalars(select(StripeEvent)))
        assert session.scalar(select(Subscription)) is None


def test_a_price_this_server_does_not_sell_pays_for_no_plan(fake_stripe, stripe_settings, customer):
    user_id, customer_id = customer
    sub = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price="price_other")
    stripe_events.process(store(fake_stripe, "customer.subscription.created", sub), settings=stripe_settings)
    assert user_state(user_id) == ("free", "active", None)


def test_stripe_down_leaves_the_event_for_a_retry(fake_stripe, stripe_settings, customer):
    user_id, customer_id = customer
    sub = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    event_id = store(fake_stripe, "customer.subscription.created", sub)
    fake_stripe.fail_next(500, times=3)  # the first try and the SDK's two retries
    with pytest.raises(stripe.APIError):
        stripe_events.process(event_id, settings=stripe_settings)
    with session_scope() as session:
        stored = session.get(StripeEvent, event_id)
        assert stored.processed_at is None and stored.attempts == 1 and "APIError" in stored.last_error
        assert stored.locked_until is None  # free for the next try at once
        session.execute(
            update(StripeEvent).values(received_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        )
    assert stripe_events.due_for_retry() == [event_id]
    assert sweep_stripe_events.run() == 1  # the beat re-sends it
    with current_app.connection_for_write() as connection:
        queued = connection.default_channel.client.lrange("default", 0, -1)
    assert sum(event_id.encode() in message for message in queued) == 1

    assert stripe_events.process(event_id, settings=stripe_settings).status == "processed"
    assert user_state(user_id) == ("pro", "active", "pro")
    assert stripe_events.due_for_retry() == []


def test_the_task_tries_again_while_stripe_is_down(fake_stripe, stripe_settings, customer, monkeypatch):
    user_id, customer_id = customer
    monkeypatch.setattr(stripe_events, "get_settings", lambda: stripe_settings)
    sub = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    event_id = store(fake_stripe, "customer.subscription.created", sub)
    fake_stripe.fail_next(500, times=3)  # the first try and the SDK's two retries

    result = process_stripe_event.apply(args=[event_id])  # here, a retry runs at once instead of later

    assert result.get() == "processed"
    assert user_state(user_id) == ("pro", "active", "pro")
    assert len(fake_stripe.requests_to("GET", "/v1/subscriptions/sub_1")) == 4


def test_the_task_does_not_try_again_what_stripe_refused(fake_stripe, stripe_settings, customer, monkeypatch):
    _, customer_id = customer
    monkeypatch.setattr(stripe_events, "get_settings", lambda: stripe_settings)
    sub = fake_stripe.put_subscription("sub_1", customer=customer_id, status="active", price=PRO)
    event_id = store(fake_stripe, "customer.subscription.created", sub)
    fake_stripe.fail_next(400)

    result = process_stripe_event.apply(args=[event_id])

    assert result.failed() and isinstance(result.result, stripe.InvalidRequestError)
    assert len(fake_stripe.requests_to("GET", "/v1/subscriptions/sub_1")) == 1


def test_the_task_processes_the_event_and_sends_the_email(
    fake_stripe, stripe_settings, customer, monkeypatch
):
    _, customer_id = customer
    monkeypatch.setattr(stripe_events, "get_settings", lambda: stripe_settings)
    invoice = fake_stripe.add_invoice(customer=customer_id, subscription=None, amount=500, status="open")
    event_id = store(fake_stripe, "invoice.payment_failed", invoice)
    assert process_stripe_event.run(event_id) == "processed"
    assert process_stripe_event.run(event_id) == "skipped"
    [email] = emails()
    with current_app.connection_for_write() as connection:
        queued = connection.default_channel.client.lrange("email", 0, -1)
    assert sum(str(email.id).encode() in message for message in queued) == 1
