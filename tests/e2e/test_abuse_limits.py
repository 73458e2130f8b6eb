"""Issue 21's limits through the real gunicorn gevent web, as an attacker meets them:
registrations per address, weak passwords, an unverified account's allowance, the
plan's request rate on conversation messages, and what an API key may not do. The
finer cases are in tests/api (test_register_limits, test_quotas, test_api_keys ...)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import call, mark_verified

pytestmark = pytest.mark.e2e

PASSWORD = "queue-lantern-orbit-27"


def _register(base: str, password: str = PASSWORD) -> tuple[int, dict, dict]:
    email = f"abuse-{uuid.uuid4().hex[:8]}@example.com"
    return call("POST", f"{base}/auth/register", {"email": email, "password": password, "name": "Eve"})


def _assert_too_many(status: int, headers: dict, body: dict, words: str) -> None:
    assert status == 429, body
    assert body["code"] == 429 and words in body["message"], body
    assert int(headers["Retry-After"]) > 0


def test_registrations_are_limited_per_address_and_weak_passwords_refused(start_stack):
    base = start_stack(processes=("web",), REGISTER_RATE_LIMIT_PER_IP="3/hour")

    status, _, weak = _register(base, password="password")  # counts: every attempt does
    assert status == 422 and "password" in weak["errors"]["json"], weak
    assert [_register(base)[0] for _ in range(2)] == [201, 201]
    _assert_too_many(*_register(base), "registered from your address")


def test_an_unverified_account_gets_the_small_allowance_and_a_key_cannot_take_the_account(start_stack):
    base = start_stack(processes=("web",))
    status, _, session = _register(base)
    assert status == 201
    token = session["access_token"]
    job = {"tool": "text", "input": {"prompt": "Hello"}}

    statuses = [call("POST", f"{base}/jobs", job, token)[0] for _ in range(5)]
    assert statuses == [202] * 5
    status, headers, refused = call("POST", f"{base}/jobs", job, token)
    _assert_too_many(status, headers, refused, "verif")

    status, _, key = call("POST", f"{base}/api-keys", {"name": "program"}, token)
    assert status == 201
    with_key = {"X-API-Key": key["key"]}
    for method, path in [
        ("GET", "/users/me/webhook-secret"),
        ("POST", "/users/me/webhook-secret/rotate"),
        ("POST", "/users/me/export"),
    ]:
        status, _, body = call(method, f"{base}{path}", headers=with_key)
        assert status == 403 and body["code"] == 403, (path, body)
    assert call("GET", f"{base}/users/me", headers=with_key)[0] == 200  # what a key may do


def test_conversation_messages_count_against_the_plan_rate(start_stack):
    base = start_stack(processes=("web",))
    status, _, session = _register(base)
    mark_verified(session["user"]["id"], session["user"]["email"])
    token = session["access_token"]
    status, _, conversation = call("POST", f"{base}/conversations", {"tool": "coach"}, token)
    assert status == 201, conversation

    url = f"{base}/conversations/{conversation['id']}/messages"
    # No worker runs: the first message's reply stays queued and the next ones are 409;
    # each is a request that could have made a job, and counts against the free plan's 60/minute.
    statuses = [call("POST", url, {"content": "Hi"}, token)[0] for _ in range(60)]
    assert statuses[0] == 202 and set(statuses[1:]) == {409}
    _assert_too_many(*call("POST", url, {"content": "Hi"}, token), "Your plan allows 60/minute")
