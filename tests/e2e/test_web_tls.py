"""TLS from the Procfile's gunicorn gevent web: gevent patches `ssl` before anything imports
it (no MonkeyPatchWarning at boot), and a Stripe checkout reaches the stand-in over HTTPS,
its certificate signed by the suite's throwaway CA, trusted through STRIPE_CA_BUNDLE."""

import pytest

from tests.fakes.services import wait_until
from tests.helpers import call

pytestmark = pytest.mark.e2e


def test_a_checkout_over_https_through_the_gevent_web_which_boots_without_a_patch_warning(
    start_stack, tmp_path, fake_stripe_tls, local_ca
):
    base = start_stack(
        processes=("web",),
        STRIPE_SECRET_KEY=fake_stripe_tls.api_key,
        STRIPE_WEBHOOK_SECRET="whsec_test_conveyor",
        STRIPE_API_BASE=fake_stripe_tls.url,
        STRIPE_CA_BUNDLE=str(local_ca.ca_file),
        STRIPE_PRICE_PRO="price_pro_test",
    )
    status, _, session = call(
        "POST",
        f"{base}/auth/register",
        {"email": "tls@example.com", "password": "a long password", "name": "T"},
    )
    assert status == 201, session

    status, _, checkout = call(
        "POST",
        f"{base}/billing/checkout-session",
        {
            "plan": "pro",
            "success_url": "https://app.example.com/paid",
            "cancel_url": "https://app.example.com/",
        },
        token=session["access_token"],
    )

    assert status == 201, checkout
    assert checkout["url"] == f"https://checkout.stripe.test/c/pay/{checkout['id']}"
    assert fake_stripe_tls.url.startswith("https://localhost:")
    [sent] = fake_stripe_tls.requests_to("POST", "/v1/checkout/sessions")
    assert sent.params["line_items"] == [{"price": "price_pro_test", "quantity": "1"}]

    [log] = tmp_path.glob("stack-*.log")
    wait_until(lambda: "Booting worker" in log.read_text(), 10, message="the worker's boot line")
    assert "Using worker: gevent" in log.read_text()
    assert "MonkeyPatchWarning" not in log.read_text()
