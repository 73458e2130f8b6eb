"""What every HTTP exchange goes through, whatever the route: a request id and an
access log line, HTTP metrics, security headers, CORS for the configured
frontends, gzip for large JSON, and no cookie session."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time

from flask import Flask, Response, g, request
from flask.sessions import SessionInterface
from flask_compress import Compress
from flask_cors import CORS

from settings import Settings
from workers import logs, metrics

access_log = logging.getLogger("conveyor.access")
compress = Compress()

# A JSON API is never a page: it loads nothing, runs nothing, is framed by nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI loads its code and styles from this host (api/docs.py) and starts itself with
# one inline script, allowed by its hash (not by 'unsafe-inline'); its styles are set inline.
DOCS_CSP = (
    "default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

# Headers a browser frontend sends and may read (it reads only the listed ones cross-origin).
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-None-Match",
    "Last-Event-ID",
    "X-API-Key",
    logs.REQUEST_ID_HEADER,
]
CORS_EXPOSE_HEADERS = ["ETag", "Location", "Retry-After", "Idempotent-Replayed", logs.REQUEST_ID_HEADER]
GZIP_MIN_BYTES = 1024


class NoCookieSession(SessionInterface):
    """The API has no cookie session: callers send a bearer token or an API key, never a
    cookie. Flask's default interface would still build a signing serializer on every
    request to look for one; this never opens one, and `flask.session` refuses writes."""

    def open_session(self, app: Flask, request):
        return None  # Flask then uses make_null_session

    def save_session(self, app: Flask, session, response: Response) -> None:
        return None


def init_http(app: Flask, settings: Settings, *, prefix: str) -> None:
    """Install, in this order (Flask runs after-request hooks last-installed first), the
    request id and access log, the security headers, CORS and gzip."""
    app.session_interface = NoCookieSession()
    _install_request_log(app)
    _install_security_headers(app, settings, docs_path=f"{prefix}/docs")
    _install_cors(app, settings, prefix=prefix)
    _install_gzip(app)


def _install_request_log(app: Flask) -> None:
    """A request id for each exchange (accepted from the caller, or made), bound to its log
    lines and returned; then one access log line and the HTTP metrics."""

    @app.before_request
    def _start() -> None:
        g.request_started = time.monotonic()
        g.request_id = logs.accept_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
        g.log_context = logs.bind(request_id=g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[logs.REQUEST_ID_HEADER] = request_id
        _log_exchange(response, time.monotonic() - g.get("request_started", time.monotonic()))
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        try:
            logs.unbind(g.pop("log_context", {}))
        except ValueError:  # reset from another context (a stream ended elsewhere): just clear
            logs.clear()


def _log_exchange(response: Response, elapsed: float) -> None:
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    metrics.http_request(method=request.method, route=route, status=response.status_code, duration=elapsed)
    access_log.info(
        "%s %s %s %.0fms",
        request.method,
        request.path,
        response.status_code,
        elapsed * 1000,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 1),
            "remote_addr": request.remote_addr,
        },
    )


def _install_security_headers(app: Flask, settings: Settings, *, docs_path: str) -> None:
    common = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]
    if settings.is_production:
        common.append(("Strict-Transport-Security", HSTS))
    api_headers = [*common, ("Content-Security-Policy", API_CSP)]

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # Each is a default: a view that set its own keeps it. One look at the names the
        # response has, rather than a case-insensitive scan of them for each default.
        if request.path == docs_path:
            wanted = [*common, ("Content-Security-Policy", _docs_csp(response))]
        else:
            wanted = api_headers
        headers = response.headers
        present = {name.lower() for name, _ in headers}  # (name, value) pairs
        for name, value in wanted:
            if name.lower() not in present:
                headers.add(name, value)
        return response


def _install_cors(app: Flask, settings: Settings, *, prefix: str) -> None:
    if not settings.cors_origins:
        return
    CORS(
        app,
        # The API, and the console's client, which a frontend may import from here.
        resources={
            f"{prefix}/*": {"origins": list(settings.cors_origins)},
            "/console/conveyor.js": {"origins": list(settings.cors_origins)},
        },
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        supports_credentials=False,  # bearer tokens and API keys, never cookies
        max_age=600,
    )


def _install_gzip(app: Flask) -> None:
    app.config.update(
        COMPRESS_REGISTER=False,
        COMPRESS_MIMETYPES=["application/json"],
        COMPRESS_MIN_SIZE=GZIP_MIN_BYTES,
        COMPRESS_ALGORITHM=["gzip"],
        COMPRESS_STREAMS=False,  # an event stream must reach the client event by event
        COMPRESS_EVALUATE_CONDITIONAL_REQUEST=False,
    )
    compress.init_app(app)

    @app.after_request
    def _gzip(response: Response) -> Response:
        # flask-compress would append ":gzip" to the ETag; a job's ETag is a fingerprint of
        # the job that long-polls and If-None-Match compare, whatever the encoding.
        etag = response.headers.get("ETag")
        response = compress.after_request(response)
        if etag is not None:
            response.headers["ETag"] = etag
        return response


def _docs_csp(response: Response) -> str:
    if response.is_streamed:
        return DOCS_CSP.format(scripts="'self'")
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(response.get_data())
    ]
    return DOCS_CSP.format(scripts=" ".join(["'self'", *hashes]))
