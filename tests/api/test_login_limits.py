"""Login and forgot-password attempts are limited per account and per address (in
Redis, so every process shares the count); over the limit is 429 with Retry-After."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tests.helpers import API, register


@pytest.fixture
def limited(settings):
    """A client of an app with small limits, and a way to send from a given address."""

    def make(**limits: str):
        from api import create_app

        app = create_app(dataclasses.replace(settings, **limits))
        app.config["TESTING"] = True
        return app.test_client()

    return make


def login(client, email: str, password: str = "wrong password", ip: str = "10.0.0.1"):
    return client.post(
        f"{API}/auth/login", json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def assert_429(response, fragment: str) -> int:
    body = response.get_json()
    assert response.status_code == 429, body
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert fragment in body["message"] and "Try again in" in body["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


def test_the_default_allows_five_attempts_a_minute_per_account(client):
    register(client, email="five@example.com")
    for _ in range(5):
        assert login(client, "five@example.com").status_code == 401
    assert_429(login(client, "five@example.com"), "for this account")


def test_over_the_account_limit_even_the_right_password_is_refused(limited):
    client = limited(login_rate_limit_per_account="3/minute")
    register(client, email="ada@example.com", password="the right password")
    for _ in range(3):
        assert login(client, "ada@example.com").status_code == 401
    assert_429(login(client, "ada@example.com", "the right password"), "for this account")
    # Counted by account whatever the case of the address, and from any address.
    assert_429(login(client, "ADA@example.com", ip="10.9.9.9"), "for this account")
    # Another account is not affected.
    register(client, email="bob@example.com", password="bobs own password")
    assert login(client, "bob@example.com", "bobs own password").status_code == 200


def test_the_address_limit_counts_attempts_on_every_account(limited):
    client = limited(login_rate_limit_per_ip="4/minute")
    for number in range(4):
        assert login(client, f"user{number}@example.com").status_code == 401
    assert_429(login(client, "user9@example.com"), "from your address")
    assert login(client, "user9@example.com", ip="10.0.0.2").status_code == 401


def test_malformed_login_bodies_count_too(limited):
    client = limited(login_rate_limit_per_ip="2/minute")
    for body in ({}, {"email": "not-an-email", "password": "x"}):
        response = client.post(f"{API}/auth/login", json=body, environ_base={"REMOTE_ADDR": "10.0.0.3"})
        assert response.status_code == 422
    assert_429(login(client, "x@example.com", ip="10.0.0.3"), "from your address")


def test_forgot_password_is_limited_per_account_and_per_address(limited):
    client = limited(forgot_password_rate_limit="2/hour", login_rate_limit_per_ip="5/minute")

    def forgot(email: str, ip: str = "10.0.0.4"):
        return client.post(
            f"{API}/auth/forgot-password", json={"email": email}, environ_base={"REMOTE_ADDR": ip}
        )

    assert forgot("someone@example.com").status_code == 202
    assert forgot("someone@example.com").status_code == 202
    over = forgot("someone@example.com")
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) > 60  # an hourly limit: until the oldest request is an hour old
    body = forgot("someone@example.com", ip="10.7.7.7").get_json()
    assert body["code"] == 429 and "for this account" in body["message"]

    for number in range(5):
        assert forgot(f"other{number}@example.com", ip="10.0.0.5").status_code == 202
    assert_429(forgot("last@example.com", ip="10.0.0.5"), "from your address")


def test_the_limits_do_not_touch_other_endpoints(limited):
    client = limited(login_rate_limit_per_ip="1/minute")
    headers, _ = register(client)
    for _ in range(3):
        assert client.get(f"{API}/users/me", headers=headers).status_code == 200
        assert client.get(f"{API}/tools").status_code == 200


def test_a_bad_limit_setting_stops_start_up():
    from settings import ConfigError, Settings

    with pytest.raises(ConfigError, match="LOGIN_RATE_LIMIT_PER_ACCOUNT must be a rate limit"):
        Settings.from_env({"LOGIN_RATE_LIMIT_PER_ACCOUNT": "five a minute"})


def test_route_limits_add_no_limiter_hook_to_every_request(limited):
    # Every limit is on its route: Flask-Limiter's per-request hooks would find nothing
    # to do, and are not installed (api/extensions.py RouteLimiter).
    client = limited(login_rate_limit_per_ip="2/minute")
    app = client.application
    hooks = [
        *app.before_request_funcs[None],
        *app.after_request_funcs[None],
        *app.teardown_request_funcs[None],
    ]
    assert not [hook for hook in hooks if "limiter" in repr(hook).lower()]
    # ... and the limits on routes still count.
    assert login(client, "a@example.com").status_code == 401
    assert login(client, "b@example.com").status_code == 401
    assert_429(login(client, "c@example.com"), "from your address")


def test_a_default_limit_still_applies_to_every_route():
    # Were default limits ever set, the per-request pass and its hooks stay.
    from flask import Flask

    from api.extensions import RouteLimiter

    app = Flask(__name__)
    app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    RouteLimiter(key_func=lambda: "one", default_limits=["1/minute"]).init_app(app)
    app.add_url_rule("/ping", "ping", lambda: "pong")
    client = app.test_client()
    assert client.get("/ping").status_code == 200
    assert client.get("/ping").status_code == 429


def test_behind_one_trusted_proxy_the_forwarded_address_is_the_one_limited(limited):
    client = limited(login_rate_limit_per_ip="2/minute", trusted_proxy_hops=1)

    def via_proxy(client_address: str):
        return client.post(
            f"{API}/auth/login",
            json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": client_address},
            environ_base={"REMOTE_ADDR": "10.0.0.254"},  # the load balancer
        )

    for _ in range(2):
        assert via_proxy("203.0.113.7").status_code == 401
    assert_429(via_proxy("203.0.113.7"), "from your address")
    assert via_proxy("203.0.113.8").status_code == 401  # another client behind the same proxy


def test_without_trusted_proxies_x_forwarded_for_is_ignored(limited):
    client = limited(login_rate_limit_per_ip="2/minute")

    def spoofed(claimed: str):
        return client.post(
            f"{API}/auth/login",
            json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": claimed},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        )

    for claimed in ("198.51.100.1", "198.51.100.2"):
        assert spoofed(claimed).status_code == 401
    assert_429(spoofed("198.51.100.3"), "from your address")  # one address, whatever it claims
