"""Login limits hold across processes: two separate web servers (each its own
gunicorn) share one count in Redis."""

from __future__ import annotations

from db.redis_client import KEY_PREFIX, get_redis
from tests.helpers import call


def attempt(base: str, email: str, password: str = "wrong password") -> tuple[int, dict, dict]:
    return call("POST", f"{base}/auth/login", {"email": email, "password": password})


def test_login_limits_are_shared_by_two_web_processes(start_stack):
    limits = {"LOGIN_RATE_LIMIT_PER_ACCOUNT": "3/minute", "LOGIN_RATE_LIMIT_PER_IP": "5/minute"}
    first = start_stack(processes=("web",), **limits)
    second = start_stack(processes=("web",), **limits)
    status, _, _ = call(
        "POST",
        f"{first}/auth/register",
        {"email": "shared@example.com", "password": "right password", "name": "S"},
    )
    assert status == 201

    # Per account: three attempts spread over both processes use up the limit in each.
    for base in (first, second, first):
        assert attempt(base, "shared@example.com")[0] == 401
    status, headers, body = attempt(second, "shared@example.com", "right password")
    assert status == 429, body
    assert "for this account" in body["message"] and int(headers["Retry-After"]) >= 1
    assert attempt(first, "shared@example.com", "right password")[0] == 429

    for stale in get_redis().scan_iter(f"{KEY_PREFIX}ratelimit*"):
        get_redis().delete(stale)

    # Per address: five attempts on different accounts, alternating processes.
    for number in range(5):
        base = (first, second)[number % 2]
        assert attempt(base, f"user{number}@example.com")[0] == 401
    for base in (first, second):
        status, _, body = attempt(base, "another@example.com")
        assert status == 429 and "from your address" in body["message"], body
