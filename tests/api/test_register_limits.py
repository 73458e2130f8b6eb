"""Registration is limited per client address and per network (IPv4 /24, IPv6 /48),
counted in Redis like the login limits: each registration sends an email to an
address the sender chose, and makes an account with a free allowance."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tests.helpers import API


@pytest.fixture
def limited(settings):
    def make(per_ip: str = "1000/hour", per_network: str = "1000/hour"):
        from api import create_app

        app = create_app(
            dataclasses.replace(
                settings, register_rate_limit_per_ip=per_ip, register_rate_limit_per_network=per_network
            )
        )
        app.config["TESTING"] = True
        return app.test_client()

    return make


def register_from(client, ip: str, body: dict | None = None):
    body = (
        body
        if body is not None
        else {
            "email": f"{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct horse battery",
            "name": "Ada",
        }
    )
    return client.post(f"{API}/auth/register", json=body, environ_base={"REMOTE_ADDR": ip})


def assert_429(response, fragment: str) -> None:
    body = response.get_json()
    assert response.status_code == 429, body
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert fragment in body["message"] and "Try again in" in body["message"], body["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


def test_the_defaults_are_five_an_hour_per_address_and_twenty_per_network():
    from settings import Settings

    defaults = Settings()
    assert (defaults.register_rate_limit_per_ip, defaults.register_rate_limit_per_network) == (
        "5/hour",
        "20/hour",
    )


def test_registrations_from_one_address_are_limited(limited):
    client = limited(per_ip="3/hour")
    assert [register_from(client, "203.0.113.7").status_code for _ in range(3)] == [201, 201, 201]
    assert_429(register_from(client, "203.0.113.7"), "registered from your address")
    assert register_from(client, "198.51.100.7").status_code == 201  # another address is not


def test_registrations_from_one_ipv4_network_are_limited(limited):
    client = limited(per_ip="2/hour", per_network="4/hour")
    codes = [register_from(client, f"203.0.113.{host}").status_code for host in (1, 2, 3, 4)]
    assert codes == [201, 201, 201, 201]
    assert_429(register_from(client, "203.0.113.250"), "registered from your network")
    assert register_from(client, "203.0.114.1").status_code == 201  # the next /24 is another network


def test_an_ipv6_network_is_a_48(limited):
    client = limited(per_ip="1/hour", per_network="2/hour")
    assert register_from(client, "2001:db8:1:1::1").status_code == 201
    assert register_from(client, "2001:db8:1:ffff::2").status_code == 201  # another /64, same /48
    assert_429(register_from(client, "2001:db8:1:abcd::3"), "registered from your network")
    assert register_from(client, "2001:db8:2::1").status_code == 201


def test_malformed_and_refused_registrations_count_too(limited):
    client = limited(per_ip="2/hour")
    assert register_from(client, "192.0.2.9", {"email": "not-an-email"}).status_code == 422
    weak = {"email": "weak@example.com", "password": "password", "name": "Ada"}
    assert register_from(client, "192.0.2.9", weak).status_code == 422
    assert_429(register_from(client, "192.0.2.9"), "registered from your address")
