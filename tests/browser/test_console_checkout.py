"""The console's plan upgrade: with billing configured (the Stripe stand-in of
tests/fakes/stripe_server.py), Upgrade starts a checkout and the browser goes to the
checkout page Stripe answered with."""

import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.browser.test_console import sign_up
from tests.e2e.conftest import launch_stack


@pytest.fixture(scope="module")
def billing_web(tmp_path_factory, fake_stripe):
    """The Procfile's web alone (a checkout needs no worker), with billing on."""
    api, stop = launch_stack(
        tmp_path_factory.mktemp("billing"),
        processes=("web",),
        STRIPE_SECRET_KEY=fake_stripe.api_key,
        STRIPE_WEBHOOK_SECRET="whsec_test_conveyor",
        STRIPE_API_BASE=fake_stripe.url,
        STRIPE_PRICE_PRO="price_pro_test",
        STRIPE_PRICE_BUSINESS="price_business_test",
    )
    origin = api.removesuffix("/api/v1")
    yield SimpleNamespace(url=lambda path: origin + path)
    stop()


def test_upgrade_goes_to_the_stripe_checkout_page(page, billing_web, fake_stripe):
    fake_stripe.reset()
    # Stripe's hosted page is not reachable here: the browser is answered in its place.
    page.route(
        "https://checkout.stripe.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Stripe Checkout</h1>"),
    )
    sign_up(page, billing_web)
    page.get_by_role("button", name="Upgrade to Pro").click()

    expect(page).to_have_url(re.compile(r"^https://checkout\.stripe\.test/c/pay/cs_test_\d+$"))
    expect(page.get_by_role("heading", name="Stripe Checkout")).to_be_visible()
    sent = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert len(sent) == 1 and "price_pro_test" in str(sent[0].params), sent
