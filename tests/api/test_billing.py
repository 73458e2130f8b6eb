"""The billing API against the local Stripe stand-in, through the real SDK: plans,
checkout, the portal, subscription and invoices, and the Stripe webhook intake
(signature on the raw body, stored once, answered at once)."""

import dataclasses
import json
import time
import uuid

import pytest
from celery import current_app
from sqlalchemy import func, select

from api import create_app
from db.models import StripeEvent, User
from db.session import session_scope
from tests.fakes.stripe_server import sign
from tests.helpers import API, register
from workers.billing import stripe_events

URLS = {
    "success_url": "https://app.example.com/paid?session={CHECKOUT_SESSION_ID}",
    "cancel_url": "https://app.example.com/plans",
}


@pytest.fixture
def billing_client(stripe_settings):
    app = create_app(stripe_settings)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def account(billing_client):
    headers, body = register(billing_client)
    return headers, uuid.UUID(body["user"]["id"])


def customer_of(user_id: uuid.UUID) -> str | None:
    with session_scope() as session:
        return session.scalar(select(User.stripe_customer_id).where(User.id == user_id))


def post_event(client, body: bytes, secret: str = "whsec_test_conveyor", **sign_args):
    headers = {"Stripe-Signature": sign(body, secret, **sign_args), "Content-Type": "application/json"}
    return client.post(f"{API}/webhooks/stripe", data=body, headers=headers)


def messages_for(event_id: str) -> int:
    with current_app.connection_for_write() as connection:
        queued = connection.default_channel.client.lrange("default", 0, -1)
    return sum(event_id.encode() in message for message in queued)


# ---------------------------------------------------------------- not configured


def test_billing_answers_503_when_not_configured(client):
    headers, _ = register(client)
    calls = [
        client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers),
        client.post(
            f"{API}/billing/portal-session", json={"return_url": URLS["cancel_url"]}, headers=headers
        ),
        client.get(f"{API}/billing/subscription", headers=headers),
        client.get(f"{API}/billing/invoices", headers=headers),
        client.post(f"{API}/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=1,v1=x"}),
    ]
    for response in calls:
        assert response.status_code == 503, response.get_json()
        assert "billing is not configured" in response.get_json()["message"].lower()
    plans = client.get(f"{API}/billing/plans").get_json()["items"]
    assert [p["name"] for p in plans] == ["free", "pro", "business"]
    assert not any(p["purchasable"] for p in plans)  # listed, but nothing is for sale


def test_plans_list_what_each_allows_and_no_secrets(billing_client):
    plans = {p["name"]: p for p in billing_client.get(f"{API}/billing/plans").get_json()["items"]}
    assert [plans[name]["purchasable"] for name in ("free", "pro", "business")] == [False, True, True]
    assert "document" not in plans["free"]["tools"] and "document" in plans["pro"]["tools"]
    assert "gpt-4o" not in plans["free"]["models"] and "gpt-4o" in plans["business"]["models"]
    assert (
        plans["free"]["monthly_tokens"] < plans["pro"]["monthly_tokens"] < plans["business"]["monthly_tokens"]
    )
    assert plans["free"]["request_rate"].endswith("/minute") and plans["business"]["retention_days"] > 0
    assert "price" not in json.dumps(plans)


# ---------------------------------------------------------------- checkout and portal


def test_checkout_makes_one_customer_and_a_session_with_idempotency_keys(
    billing_client, account, fake_stripe
):
    headers, user_id = account
    response = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    session = response.get_json()
    assert session["url"].startswith("https://checkout.stripe.test/") and session["id"].startswith("cs_")

    [customer] = fake_stripe.requests_to("POST", "/v1/customers")
    assert customer.idempotency_key == f"customer:{user_id}"
    assert customer.params["metadata"] == {"user_id": str(user_id)}
    assert customer_of(user_id) in fake_stripe.customers
    [checkout] = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert checkout.idempotency_key.startswith(f"checkout:{user_id}:")
    assert checkout.params["mode"] == "subscription" and checkout.params["customer"] == customer_of(user_id)
    assert checkout.params["line_items"] == [{"price": "price_pro_test", "quantity": "1"}]
    assert checkout.params["client_reference_id"] == str(user_id)
    assert checkout.params["success_url"] == URLS["success_url"]

    again = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "business", **URLS}, headers=headers
    )
    assert again.status_code == 201
    assert len(fake_stripe.requests_to("POST", "/v1/customers")) == 1  # the customer is kept
    assert fake_stripe.requests_to("POST", "/v1/checkout/sessions")[1].params["line_items"][0]["price"] == (
        "price_business_test"
    )


def test_a_client_idempotency_key_returns_the_same_session(billing_client, account, fake_stripe):
    headers, _ = account
    keyed = {**headers, "Idempotency-Key": "upgrade-1"}
    first = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=keyed
    )
    second = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=keyed
    )
    assert first.get_json() == second.get_json()
    other = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "business", **URLS}, headers=keyed
    )
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]["headers"]


def test_a_stripe_500_is_retried_with_the_same_key(billing_client, account, fake_stripe):
    headers, _ = account
    billing_client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers)
    fake_stripe.reset()
    fake_stripe.fail_next(500, times=1)
    response = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers
    )
    assert response.status_code == 201
    tries = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert len(tries) == 2 and tries[0].idempotency_key == tries[1].idempotency_key


def test_stripe_down_is_503_with_retry_after(billing_client, account, fake_stripe):
    headers, _ = account
    fake_stripe.fail_next(503, times=10)
    response = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers
    )
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "nothing was charged" in response.get_json()["message"]


# ---------------------------------------------------------------- over TLS, as Stripe is reached


def tls_billing_client(stripe_settings, fake_stripe_tls, ca_bundle: str):
    settings = dataclasses.replace(
        stripe_settings, stripe_api_base=fake_stripe_tls.url, stripe_ca_bundle=ca_bundle
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    return app.test_client()


def test_checkout_over_https_trusts_the_ca_named_by_stripe_ca_bundle(
    stripe_settings, fake_stripe_tls, local_ca
):
    client = tls_billing_client(stripe_settings, fake_stripe_tls, str(local_ca.ca_file))
    headers, _ = register(client)
    response = client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["url"].startswith("https://checkout.stripe.test/")
    assert fake_stripe_tls.url.startswith("https://localhost:")
    assert len(fake_stripe_tls.requests_to("POST", "/v1/checkout/sessions")) == 1


def test_without_stripe_ca_bundle_a_private_ca_is_refused(stripe_settings, fake_stripe_tls, local_ca):
    """The SDK checks the certificate against its own bundle: the test above really speaks TLS."""
    client = tls_billing_client(stripe_settings, fake_stripe_tls, "")
    headers, _ = register(client)
    response = client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers)
    assert response.status_code == 503 and "nothing was charged" in response.get_json()["message"]
    assert fake_stripe_tls.requests == []  # no request got past the handshake


BAD_CHECKOUTS = [
    ({"plan": "free", **URLS}, "plan"),
    ({"plan": "gold", **URLS}, "plan"),
    ({"plan": "pro", "cancel_url": URLS["cancel_url"]}, "success_url"),
    ({"plan": "pro", **URLS, "success_url": "javascript:alert(1)"}, "success_url"),
]


def test_checkout_validates_its_body(billing_client, account, fake_stripe):
    headers, _ = account
    for body, field in BAD_CHECKOUTS:
        response = billing_client.post(f"{API}/billing/checkout-session", json=body, headers=headers)
        assert response.status_code == 422 and field in response.get_json()["errors"]["json"], body
    assert fake_stripe.requests == []  # nothing reached Stripe


def test_checkout_with_a_live_subscription_is_409(billing_client, account, fake_stripe, stripe_settings):
    headers, user_id = account
    billing_client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers)
    fake_stripe.put_subscription(
        "sub_live", customer=customer_of(user_id), status="active", price="price_pro_test"
    )
    assert (
        post_event(
            billing_client,
            fake_stripe.event("customer.subscription.created", fake_stripe.subscriptions["sub_live"]),
        ).status_code
        == 200
    )
    with session_scope() as session:
        event_id = session.scalar(select(StripeEvent.id))
    assert stripe_events.process(event_id, settings=stripe_settings).status == "processed"

    response = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "business", **URLS}, headers=headers
    )
    assert response.status_code == 409 and "portal" in response.get_json()["message"]


def test_the_portal_needs_a_billing_account_first(billing_client, account, fake_stripe):
    headers, user_id = account
    body = {"return_url": "https://app.example.com/account"}
    response = billing_client.post(f"{API}/billing/portal-session", json=body, headers=headers)
    assert response.status_code == 409 and "checkout" in response.get_json()["message"]

    billing_client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers)
    response = billing_client.post(f"{API}/billing/portal-session", json=body, headers=headers)
    assert response.status_code == 201 and response.get_json()["url"].startswith(
        "https://billing.stripe.test/"
    )
    [portal] = fake_stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert portal.params == {"customer": customer_of(user_id), "return_url": body["return_url"]}
    assert portal.idempotency_key.startswith(f"portal:{user_id}:")


def test_subscription_and_invoices(billing_client, account, fake_stripe, stripe_settings):
    headers, user_id = account
    assert billing_client.get(f"{API}/billing/subscription", headers=headers).get_json() == {
        "plan": "free",
        "status": None,
        "subscription_id": None,
        "subscribed_plan": None,
        "current_period_end": None,
        "cancel_at_period_end": False,
    }
    assert billing_client.get(f"{API}/billing/invoices", headers=headers).get_json() == {"items": []}

    billing_client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers=headers)
    customer = customer_of(user_id)
    period_end = int(time.time()) + 86400 * 30
    fake_stripe.put_subscription(
        "sub_9", customer=customer, status="active", price="price_pro_test", period_end=period_end
    )
    post_event(
        billing_client,
        fake_stripe.event(
            "customer.subscription.created", fake_stripe.subscriptions["sub_9"], event_id="evt_sub9"
        ),
    )
    stripe_events.process("evt_sub9", settings=stripe_settings)
    fake_stripe.add_invoice(customer=customer, subscription="sub_9", amount=2000, status="paid")
    fake_stripe.add_invoice(customer="cus_someone_else", subscription=None, amount=999, status="paid")
    fake_stripe.add_invoice(customer=customer, subscription="sub_9", amount=2000, status="open")

    subscription = billing_client.get(f"{API}/billing/subscription", headers=headers).get_json()
    assert subscription["plan"] == "pro" and subscription["status"] == "active"
    assert subscription["subscription_id"] == "sub_9" and subscription["subscribed_plan"] == "pro"
    assert subscription["current_period_end"].startswith(time.strftime("%Y-%m-%d", time.gmtime(period_end)))
    invoices = billing_client.get(f"{API}/billing/invoices", headers=headers).get_json()["items"]
    assert [(i["status"], i["amount_due"]) for i in invoices] == [("open", 2000), ("paid", 2000)]
    assert invoices[0]["hosted_invoice_url"].startswith("https://invoice.stripe.test/")


def test_billing_needs_a_login(billing_client):
    assert billing_client.get(f"{API}/billing/subscription").status_code == 401
    assert (
        billing_client.post(f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}).status_code
        == 401
    )


# ---------------------------------------------------------------- the webhook


def test_a_signed_event_is_stored_and_sent_to_a_task_once_however_often_it_comes(billing_client, fake_stripe):
    body = fake_stripe.event(
        "customer.subscription.updated", {"id": "sub_x", "object": "subscription"}, event_id="evt_ten"
    )
    answers = [post_event(billing_client, body) for _ in range(10)]
    assert [a.status_code for a in answers] == [200] * 10
    assert answers[0].get_json() == {"received": True}
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(StripeEvent)) == 1
        stored = session.get(StripeEvent, "evt_ten")
        assert stored.type == "customer.subscription.updated" and stored.processed_at is None
        assert stored.payload == json.loads(body)
    assert messages_for("evt_ten") == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, client: post_event(client, body, secret="whsec_wrong"),
        lambda body, client: post_event(client, body, timestamp=int(time.time()) - 3600),  # a replay
        lambda body, client: client.post(f"{API}/webhooks/stripe", data=body),  # no signature
        lambda body, client: client.post(
            f"{API}/webhooks/stripe",
            data=body.replace(b"sub_x", b"sub_y"),
            headers={"Stripe-Signature": sign(body, "whsec_test_conveyor")},
        ),
    ],
    ids=["wrong-secret", "too-old", "missing", "body-changed"],
)
def test_a_bad_signature_is_400_and_nothing_is_stored(billing_client, fake_stripe, tamper):
    body = fake_stripe.event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"})
    response = tamper(body, billing_client)
    assert response.status_code == 400
    assert "Stripe-Signature" in response.get_json()["message"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def test_a_signed_body_that_is_not_an_event_is_400(billing_client):
    body = json.dumps({"object": "event", "hello": "world"}).encode()
    response = post_event(billing_client, body)
    assert response.status_code == 400 and "not a Stripe event" in response.get_json()["message"]


def test_an_api_key_cannot_manage_billing(billing_client, account):
    headers, _ = account
    key = billing_client.post(f"{API}/api-keys", json={"name": "ci"}, headers=headers).get_json()["key"]
    response = billing_client.post(
        f"{API}/billing/checkout-session", json={"plan": "pro", **URLS}, headers={"X-API-Key": key}
    )
    assert response.status_code == 403
    assert billing_client.get(f"{API}/billing/subscription", headers={"X-API-Key": key}).status_code == 403
