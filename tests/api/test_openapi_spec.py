"""The OpenAPI spec says who may call each operation and every status it may answer,
each error in the one shape (api/openapi.py derives them; the fuzz in
test_openapi_fuzz.py checks the app keeps to them)."""

from __future__ import annotations

import pytest

from tests.helpers import API

TOKEN = [{"bearerAuth": []}]
TOKEN_OR_KEY = [{"bearerAuth": []}, {"apiKeyAuth": []}]


@pytest.fixture
def spec(client):
    return client.get(f"{API}/openapi.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield method.upper(), path, operation


def test_admin_operations_take_an_access_token_only(spec):
    admin = [(method, path, op) for method, path, op in operations(spec) if path.startswith(f"{API}/admin/")]
    assert admin
    for _method, _path, operation in admin:
        assert operation["security"] == TOKEN
        assert {"401", "403"} <= set(operation["responses"])


def test_each_operation_names_the_credentials_it_accepts(spec):
    by_name = {(method, path): op["security"] for method, path, op in operations(spec)}
    assert by_name[("POST", f"{API}/jobs")] == TOKEN_OR_KEY
    assert by_name[("POST", f"{API}/api-keys")] == TOKEN
    assert by_name[("POST", f"{API}/auth/refresh")] == TOKEN
    assert by_name[("GET", f"{API}/tools")] == []
    assert by_name[("POST", f"{API}/auth/login")] == []


def test_every_status_is_listed_and_there_is_no_catch_all(spec):
    submit = spec["paths"][f"{API}/jobs"]["post"]["responses"]
    assert set(submit) == {"202", "400", "401", "402", "413", "422", "429", "503"}
    job = spec["paths"][f"{API}/jobs/{{job_id}}"]["get"]["responses"]
    assert {"401", "404", "422", "503"} <= set(job)
    assert "413" not in job  # no body, nothing to be too large
    for _method, _path, operation in operations(spec):
        assert "default" not in operation["responses"]
        assert "503" in operation["responses"]


def test_errors_are_documented_in_the_one_shape(spec):
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "status", "message"}
    assert set(error["properties"]) == {"code", "status", "message", "errors"}
    conflict = spec["components"]["responses"]["CONFLICT"]
    assert conflict["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
