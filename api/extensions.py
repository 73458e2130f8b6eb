"""Extension objects, created unbound here and bound in create_app()."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from api.compat import RememberingJWTManager
from api.errors import ConveyorApi

# What makes Flask-Limiter's per-request hooks needed: limits or headers beyond a route's
# own, given to the constructor or in the app's config.
PER_REQUEST_OPTIONS = ("default_limits", "application_limits", "headers_enabled")
PER_REQUEST_CONFIG = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_HEADERS_ENABLED")


class RouteLimiter(Limiter):
    """Flask-Limiter with every limit on its route.

    Conveyor's limits are all decorators on their views (api.request_limits): no default,
    application or blueprint-wide limits, no X-RateLimit headers, no `deduct_when`.
    Flask-Limiter still hooks every request: a before_request pass that resolves its
    rules, which finds nothing here, and an after_request and a teardown hook for the
    headers, conditional deductions and its per-request state, which have nothing to
    do here; together they are a large part of what a health check or a job poll
    costs. Without default or application limits and headers, the hooks `init_app`
    added to the app are taken off again (through Flask's public hook lists); each
    decorated view checks its own limits when it is called, as before, and its state
    goes with the request. Do not give a blueprint a limit of its own
    (`limiter.limit(blueprint)`): only the before_request pass would check it."""

    def __init__(self, key_func: Any, **options: Any) -> None:
        self._per_request_options = any(options.get(name) for name in PER_REQUEST_OPTIONS)
        super().__init__(key_func, **options)

    def init_app(self, app: Flask) -> None:
        hooks = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
        counts = [len(funcs.get(None, ())) for funcs in hooks]
        super().init_app(app)
        if self._per_request_options or any(app.config.get(name) for name in PER_REQUEST_CONFIG):
            return
        for funcs, count in zip(hooks, counts, strict=True):
            del funcs.get(None, [])[count:]  # Flask appends each new hook


api = ConveyorApi()
jwt = RememberingJWTManager()
# Storage (Redis) and strategy are configured in api.request_limits.init_limits.
limiter = RouteLimiter(key_func=get_remote_address)
