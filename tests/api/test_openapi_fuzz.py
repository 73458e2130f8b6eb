"""Schemathesis over the app's own OpenAPI spec (/api/v1/openapi.json): every operation,
with generated valid and invalid requests, authenticated as its `security` says (an
admin's token for /admin, an API key on the job API's reads, a user's token otherwise).
No response may be a 5xx, or a status, content type, header or body the spec does not
document for that operation.

`make test` runs a few examples per operation with fixed seeds (the same requests every
run); `make fuzz` runs FUZZ_EXAMPLES of them per operation with fresh seeds. Any failure
prints the request that caused it as a curl command.
"""

from __future__ import annotations

import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask_jwt_extended import create_access_token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from tests.helpers import API
from tests.rows import make_user

FUZZ_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
EXAMPLES = int(FUZZ_EXAMPLES or 6)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# /ready's 503 is its documented report that no worker is running (none runs here),
# not a server error; its body and status are still checked against the spec.
READY = f"{API}/ready"
# The WSGI client hands over bodies as sent; gzip is tested in test_http_hygiene.py.
PLAIN = {"Accept-Encoding": "identity"}
CONFIG = schemathesis.Config.from_dict({"generation": {"mode": "all"}})
QUICK_PHASES = [hypothesis.Phase.explicit, hypothesis.Phase.generate]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=FUZZ_EXAMPLES is None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=list(hypothesis.Phase) if FUZZ_EXAMPLES else QUICK_PHASES,
)


# Loaded at collection, one test per operation (the run's database and Redis are set up
# by then: tests/conftest.py). schemathesis.pytest.from_fixture would load it lazily, but
# it does not work under this pytest.
APP = create_app()
schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", APP, config=CONFIG)


@pytest.fixture
def fuzzed_app(stripe_settings):
    """The app under fuzz: billing on, against the local Stripe stand-in."""
    return create_app(stripe_settings)


@pytest.fixture
def credentials(fuzzed_app) -> dict[str, dict[str, str]]:
    """A user's token and API key, and an admin's token (made directly: registration's own
    limits must not decide whether the fuzz can start)."""
    with fuzzed_app.app_context():
        user = create_access_token(identity=str(make_user(plan="free")))
        admin = create_access_token(identity=str(make_user(role="admin")))
    created = fuzzed_app.test_client().post(f"{API}/api-keys", json={"name": "fuzz"}, headers=_bearer(user))
    assert created.status_code == 201, created.get_json()
    return {
        "token": _bearer(user),
        "key": {"X-API-Key": created.get_json()["key"]},
        "admin": _bearer(admin),
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _credential_for(case: Any, credentials: dict[str, dict[str, str]]) -> dict[str, str]:
    security = case.operation.definition.raw.get("security") or []
    schemes = {name for requirement in security for name in requirement}
    if not schemes:
        return {}
    if case.operation.path.startswith(f"{API}/admin/"):
        return credentials["admin"]
    if "apiKeyAuth" in schemes and case.method == "GET":
        return credentials["key"]
    return credentials["token"]


@schema.parametrize()
@SETTINGS
def test_every_operation_answers_as_the_spec_says(case, fuzzed_app, credentials):
    checks = [check for check in CHECKS if not (case.path == READY and check is not_a_server_error)]
    headers = {**PLAIN, **_credential_for(case, credentials)}
    case.call_and_validate(app=fuzzed_app, headers=headers, checks=checks)
