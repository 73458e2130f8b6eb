"""Attempt limits on the endpoints that guess at passwords or send email, counted in
Redis so that every gunicorn worker and every host shares one count.

Registration is limited per address and per network (`_network`: the IPv4 /24 or
the IPv6 /48 the address is in), since one host can use many addresses of its
network; the account export per user; job submissions by the caller's plan.

Over a limit the answer is 429 in the one error shape with `Retry-After`. Counting
is by a moving window. Every attempt counts, successful or not: a person does not
log in five times a minute, and counting only failures would let parallel guesses
slip through between the check and the count. Limits are by the address the
request came from (`request.remote_addr`): behind proxies, TRUSTED_PROXY_HOPS says how
many of them to believe about X-Forwarded-For (werkzeug's ProxyFix, api/__init__.py),
or every client shares the proxy's limit.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, request
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many

from api.auth import current_caller, current_settings, current_user_id
from api.errors import error_response
from api.extensions import limiter
from api.openapi import documented
from db.redis_client import DRIVER, key
from db.repositories.users import normalize_email
from settings import Settings
from workers.plans import get_plan


def init_limits(app: Flask, settings: Settings) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.redis_url,
        RATELIMIT_STORAGE_OPTIONS={
            "key_prefix": key("ratelimit"),
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
            "driver_info": DRIVER,
        },
        RATELIMIT_STRATEGY="moving-window",
        # Retry-After is set by _too_many; the X-RateLimit-* headers are not part of the API.
        RATELIMIT_HEADERS_ENABLED=False,
    )
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _too_many)


def _too_many(error: RateLimitExceeded):
    current = limiter.current_limit
    wait = 60
    if current is not None:
        # reset_at is in whole seconds; never promise longer than the limit's own window.
        wait = min(max(1, math.ceil(current.reset_at - time.time())), current.limit.get_expiry())
    return error_response(
        429, f"{error.description} Try again in {wait} seconds.", headers={"Retry-After": str(wait)}
    )


def _email_in_body() -> str:
    """The per-account key: the email being tried (hashed: Redis need not hold addresses)."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return f"no-email:{get_remote_address()}"
    digest = hashlib.sha256(normalize_email(email[:400]).encode()).hexdigest()[:32]
    return f"email:{digest}"


def _ip() -> str:
    return f"ip:{get_remote_address()}"


# The network a client address is counted in: an IPv4 /24 (one site's block), an IPv6
# /48 (the most one customer is usually given, so rotating through it stays in one count).
IPV4_NETWORK_PREFIX = 24
IPV6_NETWORK_PREFIX = 48


def _network() -> str:
    address = get_remote_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"net:{address}"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV4_NETWORK_PREFIX if ip.version == 4 else IPV6_NETWORK_PREFIX
    return f"net:{ipaddress.ip_network((ip, prefix), strict=False)}"


def _user() -> str:
    return f"user:{current_user_id()}"


def _limited(*limits: tuple[str, Callable[[], str], str]) -> Callable[[Callable], Callable]:
    """A decorator checking each (setting, key, message) limit, the first one innermost;
    the setting is read per request (tests build apps with their own settings)."""

    def decorate(view: Callable) -> Callable:
        view = documented(statuses={429})(view)
        for setting, key_func, message in limits:
            view = limiter.limit(
                lambda setting=setting: getattr(current_settings(), setting),
                key_func=key_func,
                error_message=message,
            )(view)
        return view

    return decorate


# LOGIN_RATE_LIMIT_PER_ACCOUNT per email tried, LOGIN_RATE_LIMIT_PER_IP per address.
login_limits = _limited(
    ("login_rate_limit_per_account", _email_in_body, "Too many login attempts for this account."),
    ("login_rate_limit_per_ip", _ip, "Too many login attempts from your address."),
)

# FORGOT_PASSWORD_RATE_LIMIT per email, LOGIN_RATE_LIMIT_PER_IP per address.
forgot_password_limits = _limited(
    ("forgot_password_rate_limit", _email_in_body, "Too many password reset requests for this account."),
    ("login_rate_limit_per_ip", _ip, "Too many password reset requests from your address."),
)

# REGISTER_RATE_LIMIT_PER_IP per address, REGISTER_RATE_LIMIT_PER_NETWORK per network.
register_limits = _limited(
    ("register_rate_limit_per_network", _network, "Too many accounts were registered from your network."),
    ("register_rate_limit_per_ip", _ip, "Too many accounts were registered from your address."),
)

# Each export builds a zip and sends an email. Put it below the login decorator: the
# count is the caller's.
account_export_limits = _limited(
    (
        "account_export_rate_limit",
        _user,
        "You have asked for your data export too often; the last one's link is in your email.",
    ),
)


def plan_request_limits(view: Callable) -> Callable:
    """The caller's plan's request rate (`Plan.request_rate`), counted per user, by
    flask-limiter's strategy on its storage (the moving window in Redis), checked here
    rather than through `limiter.limit`: that decorator resolves its rules again on
    every request, where the plan's rate, parsed once (`_parsed`), is all there is to
    check on the busiest write. Over the rate: 429 with `Retry-After`, as the other
    limits answer. Put it below `login_required`: the limit depends on who is calling."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        caller = current_caller()
        rate = get_plan(caller.plan).request_rate
        key = f"user:{caller.id}"
        for item in _parsed(rate):
            if not limiter.limiter.hit(item, PLAN_SCOPE, key):
                reset_at = limiter.limiter.get_window_stats(item, PLAN_SCOPE, key).reset_time
                wait = min(max(1, math.ceil(reset_at - time.time())), item.get_expiry())
                return error_response(
                    429,
                    f"Your plan allows {rate} of these requests. Try again in {wait} seconds.",
                    headers={"Retry-After": str(wait)},
                )
        return view(*args, **kwargs)

    return documented(statuses={429})(wrapper)


PLAN_SCOPE = "plan"  # the limit's key in Redis: <prefix>/plan/user:<id> and the window


@functools.cache
def _parsed(rate: str) -> list[RateLimitItem]:
    return parse_many(rate)
