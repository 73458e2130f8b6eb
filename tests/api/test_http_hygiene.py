"""What every response carries: a request id, security headers, CORS for the
configured frontends only, and gzip for large JSON (never for event streams)."""

import base64
import dataclasses
import gzip
import hashlib
import json
import re
import uuid

import pytest

from db.repositories import jobs
from db.session import session_scope
from tests.helpers import API, PRODUCTION_ENV, register, submit

FRONTEND = "https://app.example.com"


@pytest.fixture
def headers(client):
    return register(client)[0]


@pytest.fixture
def cors_client(settings):
    from api import create_app

    return create_app(dataclasses.replace(settings, cors_origins=(FRONTEND,))).test_client()


def test_a_sane_request_id_from_the_client_is_echoed(client):
    response = client.get(f"{API}/health", headers={"X-Request-ID": "frontend-7f3a:42"})
    assert response.headers["X-Request-ID"] == "frontend-7f3a:42"


@pytest.mark.parametrize("sent", [None, "", "has spaces", "x" * 129, "<script>", 'quote"d'])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(client, sent):
    response = client.get(f"{API}/health", headers={"X-Request-ID": sent} if sent is not None else {})
    made = response.headers["X-Request-ID"]
    assert made != sent and len(made) == 32 and int(made, 16) >= 0
    assert client.get(f"{API}/health").headers["X-Request-ID"] != made  # one per request


def test_errors_carry_the_request_id_and_the_security_headers_too(client):
    response = client.get(f"{API}/jobs", headers={"X-Request-ID": "req-401"})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "req-401"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_json_responses_have_restrictive_security_headers(client):
    response = client.get(f"{API}/tools")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "Strict-Transport-Security" not in response.headers  # not in development or tests


def test_production_adds_hsts(settings):
    from api import create_app

    production = dataclasses.replace(settings, env="production")
    response = create_app(production).test_client().get(f"{API}/health")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_the_docs_page_and_every_file_it_loads_come_from_the_api_itself(client):
    """Swagger UI works with no internet: nothing it loads is on another host."""
    response = client.get(f"{API}/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    loads = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert {link.rsplit("/", 1)[1] for link in loads} == {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    assert "http" not in page and "//" not in page  # no other host, no scheme-relative link
    assert '"validatorUrl": null' in page  # no badge fetched from validator.swagger.io
    for link in loads:
        asset = client.get(link)
        assert link.startswith(f"{API}/docs/") and asset.status_code == 200, link
        assert asset.mimetype == ("text/css" if link.endswith(".css") else "text/javascript")
        if link.endswith(".css"):  # what a stylesheet loads (fonts, images) is inline too
            assert set(re.findall(r"url\(\"?([a-z]+):", asset.get_data(as_text=True))) == {"data"}
    assert client.get(f"{API}/openapi.json").status_code == 200  # what the page then shows


def test_the_docs_page_s_csp_names_this_host_only_and_its_own_inline_script(client):
    response = client.get(f"{API}/docs")
    csp = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    [inline] = re.findall(rb"<script>(.*?)</script>", response.get_data(), re.DOTALL)
    own = "'sha256-" + base64.b64encode(hashlib.sha256(inline).digest()).decode() + "'"
    assert csp["script-src"] == f"'self' {own}"  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'"
    sources = {source for value in csp.values() for source in value.split()}
    assert sources <= {"'none'", "'self'", "'unsafe-inline'", "data:", own}, sources  # no host at all
    assert "'unsafe-inline'" in csp["style-src"]  # Swagger UI sets styles inline; scripts never
    assert client.get(f"{API}/docs/swagger-ui/oauth2-redirect.html").status_code == 404  # only what it loads


def test_cors_preflight_from_the_configured_frontend_passes(cors_client):
    response = cors_client.options(
        f"{API}/jobs",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}
    assert "Access-Control-Allow-Credentials" not in response.headers  # tokens, never cookies


def test_cors_from_another_origin_gets_no_allowance(cors_client):
    preflight = cors_client.options(
        f"{API}/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    simple = cors_client.get(f"{API}/tools", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in simple.headers


def test_a_frontend_can_read_the_headers_it_needs(cors_client, headers):
    response = submit(cors_client, {**headers, "Origin": FRONTEND})
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "etag", "retry-after", "x-request-id"} <= exposed


def test_production_allows_no_origin_unless_configured(settings):
    from settings import Settings

    production = Settings.from_env({**PRODUCTION_ENV, "DATABASE_URL": settings.database_url})
    assert production.cors_origins == ()
    assert Settings.from_env({}).cors_origins == ("http://localhost:3000",)


def test_large_json_is_gzipped_when_the_client_accepts_it(client):
    plain = client.get(f"{API}/tools")
    assert len(plain.get_data()) > 1024 and "Content-Encoding" not in plain.headers
    zipped = client.get(f"{API}/tools", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert json.loads(gzip.decompress(zipped.get_data())) == plain.get_json()
    assert int(zipped.headers["Content-Length"]) < len(plain.get_data())


def test_small_json_is_not_gzipped(client):
    response = client.get(f"{API}/health", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers and response.get_json()["status"] == "ok"


def test_a_gzipped_job_keeps_its_etag_so_long_polls_and_304s_still_work(client, headers):
    accept = {**headers, "Accept-Encoding": "gzip"}
    job_id = submit(client, headers, input={"prompt": "long " * 400}).get_json()["id"]
    first = client.get(f"{API}/jobs/{job_id}", headers=accept)
    assert first.headers["Content-Encoding"] == "gzip"
    etag = first.headers["ETag"]
    assert etag == client.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    again = client.get(f"{API}/jobs/{job_id}", headers={**accept, "If-None-Match": etag})
    assert again.status_code == 304
    waited = client.get(f"{API}/jobs/{job_id}?wait=1", headers={**accept, "If-None-Match": etag})
    assert waited.status_code == 304  # unchanged: the long-poll waited instead of answering at once


def test_an_event_stream_is_never_gzipped(client, headers):
    job_id = submit(client, headers, input={"prompt": "stream " * 300}).get_json()["id"]
    with session_scope() as session:
        jobs.finish(
            session,
            job_id=uuid.UUID(job_id),
            outcome=jobs.Outcome("failed", error_code="provider_error", error_message="x" * 2000),
            from_statuses=("queued",),
        )
    response = client.get(f"{API}/jobs/{job_id}/events", headers={**headers, "Accept-Encoding": "gzip"})
    assert response.mimetype == "text/event-stream"
    assert "Content-Encoding" not in response.headers
    assert response.get_data(as_text=True).startswith("retry: 2000")


def test_a_body_over_the_limit_is_still_refused(client, headers, settings):
    response = submit(client, headers, input={"prompt": "x" * (settings.max_request_bytes + 1)})
    assert response.status_code == 413 and response.get_json()["code"] == 413
