"""The HTTP API: `create_app()` builds it; nothing here runs at import."""

from __future__ import annotations

from flask import Flask

from settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> Flask:
    from api.docs import docs_config, init_docs

    settings = settings or get_settings()
    app = Flask(__name__)
    app.extensions["conveyor.settings"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="Conveyor",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        **docs_config(API_PREFIX),  # Swagger UI at /api/v1/docs, from installed files (api/docs.py)
    )
    from workers import logs

    logs.configure(settings)  # JSON or text, with the request id on every line (workers/logs.py)

    from api.auth import init_auth
    from api.errors import register_error_handlers
    from api.extensions import api
    from api.http import init_http
    from api.input_gate import init_gate
    from api.request_limits import init_limits
    from db.session import init_engine_from, remove_session
    from workers.celery_app import app as celery_app  # the app tasks are sent through

    init_engine_from(settings, web=True)
    app.extensions["celery"] = celery_app
    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    api.spec.components.security_scheme("apiKeyAuth", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    api.spec.components.security_scheme(
        "streamToken",
        {
            "type": "apiKey",
            "in": "query",
            "name": "token",
            "description": "The token in a job's `urls.stream`: that job's events only, expiring.",
        },
    )
    if settings.trusted_proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address and scheme as the trusted proxies saw them: per-IP limits and
        # access lines see each client, not the load balancer.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    init_http(app, settings, prefix=API_PREFIX)  # first: every response gets its request id
    init_gate(app)  # then, before authentication, input the database cannot hold is refused
    init_auth(app, settings)
    init_limits(app, settings)
    init_docs(app, prefix=API_PREFIX)
    register_error_handlers(app)
    _register_blueprints(api)
    from api.console import console_blueprint

    app.register_blueprint(console_blueprint(settings))
    from api.cli import users_cli

    app.cli.add_command(users_cli)  # `flask --app wsgi users set-role …` (api/cli.py)
    app.teardown_appcontext(lambda _exc: remove_session())
    return app


def _register_blueprints(api) -> None:
    from api.resources import (
        admin,
        api_keys,
        auth,
        billing,
        health,
        jobs,
        metrics,
        stripe_webhooks,
        tools,
        usage,
        users,
        webhooks,
    )

    api.register_blueprint(auth.blp, url_prefix=f"{API_PREFIX}/auth")
    api.register_blueprint(users.blp, url_prefix=f"{API_PREFIX}/users")
    api.register_blueprint(api_keys.blp, url_prefix=f"{API_PREFIX}/api-keys")
    api.register_blueprint(tools.blp, url_prefix=f"{API_PREFIX}/tools")
    api.register_blueprint(jobs.blp, url_prefix=f"{API_PREFIX}/jobs")
    api.register_blueprint(health.blp, url_prefix=API_PREFIX)
    api.register_blueprint(webhooks.blp, url_prefix=API_PREFIX)
    api.register_blueprint(metrics.blp, url_prefix=API_PREFIX)
    api.register_blueprint(admin.blp, url_prefix=f"{API_PREFIX}/admin")
    api.register_blueprint(billing.blp, url_prefix=f"{API_PREFIX}/billing")
    api.register_blueprint(usage.blp, url_prefix=f"{API_PREFIX}/usage")
    api.register_blueprint(stripe_webhooks.blp, url_prefix=API_PREFIX)

    from api.resources import batches, conversations, exports, files

    api.register_blueprint(batches.blp, url_prefix=API_PREFIX)

    api.register_blueprint(conversations.blp, url_prefix=f"{API_PREFIX}/conversations")
    api.register_blueprint(exports.blp, url_prefix=API_PREFIX)
    api.register_blueprint(files.blp, url_prefix=f"{API_PREFIX}/files")
