"""The web console at /console/: static files from the repository's `console/` folder.

A plain blueprint, not an API resource: it is no operation of the OpenAPI document. Its
pages run only the console's own scripts and styles, and talk only to this API and to
the public address its job links carry (PUBLIC_BASE_URL may name another host or port
than the one the console was opened on, as behind a proxy)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, send_from_directory

from settings import Settings

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console"
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def console_blueprint(settings: Settings) -> Blueprint:
    blp = Blueprint("console", __name__, url_prefix="/console")
    csp = CONSOLE_CSP.format(connect=" ".join(["'self'", *_origin(settings.public_base_url)]))

    @blp.get("")
    def root() -> Response:
        return redirect("/console/", code=308)

    @blp.get("/")
    @blp.get("/<path:name>")
    def asset(name: str = "index.html") -> Response:
        # max_age=0: the browser checks the ETag each time, so a deploy is seen at once.
        return send_from_directory(CONSOLE_DIR, name, max_age=0)

    @blp.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = csp
        return response

    return blp


def _origin(url: str) -> list[str]:
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"] if parts.scheme and parts.netloc else []
