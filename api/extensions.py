"""Extension objects, created unbound here and bound in create_app()."""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from typing import Any

import flask_jwt_extended.view_decorators
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from api.errors import ConveyorApi

VERIFIED_TOKENS_KEPT = 2_000  # per process: about 3 MB


class RememberingJWTManager(JWTManager):
    """flask-jwt-extended, remembering the access tokens it has verified.

    Each request decodes its token three times (claims, header, then verified), and
    PyJWT checks every character of each part in Python: about a fifth of a job poll's
    CPU. The same bytes verify the same way every time, so a verified token's claims
    are kept (the most recent VERIFIED_TOKENS_KEPT, keyed by the signing key and the
    token) and reused while the token has not expired; from its expiry on it is decoded
    afresh, which refuses it exactly as before. Revocation is never remembered: the
    blocklist is read on every request (api.auth._is_revoked)."""

    def __init__(self) -> None:
        super().__init__()
        self._verified: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict:
        if csrf_value is not None or allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        key = (current_app.config["JWT_SECRET_KEY"], encoded_token)
        with self._lock:
            claims = self._verified.get(key)
            if claims is not None:
                self._verified.move_to_end(key)
        if claims is not None and time.time() < claims.get("exp", 0):
            return dict(claims)
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if "exp" in claims:  # a token that never expires is verified every time
            with self._lock:
                self._verified[key] = dict(claims)
                while len(self._verified) > VERIFIED_TOKENS_KEPT:
                    self._verified.popitem(last=False)
        return claims


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _unverified_header(encoded_token: str) -> dict[str, Any]:
    return _decode_unverified_header(encoded_token)


def _remembered_header(encoded_token: str) -> dict[str, Any]:
    """A token's header (its `alg`, `typ`), decoded once per token string.

    flask-jwt-extended reads the header of every request's token after verifying it,
    and PyJWT decodes all three parts of the token again to do so, checking each
    character in Python: about 5% of a job poll's instructions. The header is a pure
    function of the token's text (nothing here is trusted: the token was verified
    first, with the same text), so it is kept like the verified claims; failures are
    not kept, and each caller gets its own copy."""
    return dict(_unverified_header(encoded_token))


_decode_unverified_header = flask_jwt_extended.view_decorators.get_unverified_jwt_headers
flask_jwt_extended.view_decorators.get_unverified_jwt_headers = _remembered_header


class RouteLimiter(Limiter):
    """Flask-Limiter with every limit on its route.

    Conveyor's limits are all decorators on their views (api.ratelimits): no default,
    application or blueprint-wide limits, no X-RateLimit headers, no `deduct_when`.
    Flask-Limiter still hooks every request: a before_request pass that resolves its
    rules, which finds nothing here (a sixth of a health check's instructions, 7% of a
    job poll's), and an after_request and a teardown hook for the headers, conditional
    deductions and its per-request state, which have nothing to do here (another 3% of
    a poll's). Without default or application limits and headers, the first is skipped
    and the other two are not installed; each decorated view checks its own limits when
    it is called, as before, and its state goes with the request. Do not give a
    blueprint a limit of its own (`limiter.limit(blueprint)`): only the before_request
    pass would check it."""

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        if self._route_limits_only():
            after, teardown = app.after_request_funcs[None], app.teardown_request_funcs[None]
            after[:] = [hook for hook in after if not self._is_own(hook, Limiter._Limiter__inject_headers)]
            teardown[:] = [
                hook for hook in teardown if not self._is_own(hook, Limiter._Limiter__release_context)
            ]

    def _is_own(self, hook: Any, method: Any) -> bool:
        """Whether an app hook is `method` of this limiter (bound, or a partial as
        Flask-Limiter installs its after_request hook)."""
        if isinstance(hook, functools.partial):
            return hook.func is method and hook.args == (self,)
        return getattr(hook, "__self__", None) is self and getattr(hook, "__func__", None) is method

    def _route_limits_only(self) -> bool:
        manager = self.limit_manager
        return not (manager.default_limits or manager.application_limits or self._headers_enabled)

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if in_middleware and self._route_limits_only():
            return
        super()._check_request_limit(callable_name, in_middleware)


api = ConveyorApi()
jwt = RememberingJWTManager()
# Storage (Redis) and strategy are configured in api.ratelimits.init_limits.
limiter = RouteLimiter(key_func=get_remote_address)
