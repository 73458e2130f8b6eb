"""The input gate (api/input_gate.py): text the database cannot hold, JSON nested too
deep and numbers no one can use are refused before any view runs, in the error shape,
naming the field; ordinary text (accents, emoji, escaped surrogate pairs) goes through."""

from __future__ import annotations

import json

import pytest

from api.input_gate import MAX_JSON_DEPTH
from tests.helpers import API, register, submit

NUL = "a\u0000b"
SURROGATE = "a\ud800b"
BAD = {"nul": NUL, "surrogate": SURROGATE}
SAYS = {"nul": "NUL character", "surrogate": "lone surrogate"}

ACCOUNT = {"email": "gate@example.com", "password": "correct horse battery", "name": "Gate"}


def _with(body: dict, path: tuple[str, ...], value: str) -> dict:
    """A copy of `body` with the field at `path` set to `value`."""
    body = json.loads(json.dumps(body))
    node = body
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return body


# (method, URL under the API, the valid body, the field made bad)
REQUESTS = [
    ("POST", "/auth/register", ACCOUNT, ("email",)),
    ("POST", "/auth/register", ACCOUNT, ("password",)),
    ("POST", "/auth/register", ACCOUNT, ("name",)),
    ("POST", "/auth/login", ACCOUNT, ("email",)),
    ("POST", "/auth/login", ACCOUNT, ("password",)),
    ("POST", "/auth/forgot-password", {"email": ACCOUNT["email"]}, ("email",)),
    ("POST", "/auth/reset-password", {"token": "t", "password": "a new long password"}, ("token",)),
    ("POST", "/auth/logout", {"refresh_token": "r"}, ("refresh_token",)),
    ("POST", "/jobs", {"tool": "text", "input": {"prompt": "Hi"}}, ("input", "prompt")),
    ("POST", "/jobs", {"tool": "text", "input": {"prompt": "Hi"}}, ("input", "system")),
    ("POST", "/jobs", {"tool": "text", "input": {"prompt": "Hi"}}, ("tool",)),
    ("POST", "/jobs", {"tool": "text", "input": {"prompt": "Hi"}}, ("model",)),
    ("PATCH", "/users/me", {"name": "Ada"}, ("name",)),
    ("PATCH", "/users/me", {"profile": {"goals": "fly"}}, ("profile", "goals")),
    ("POST", "/api-keys", {"name": "ci"}, ("name",)),
    ("POST", "/conversations", {"tool": "coach"}, ("title",)),
    ("POST", "/conversations", {"tool": "coach"}, ("tool",)),
    ("POST", "/conversations/{conversation}/messages", {"content": "Hello"}, ("content",)),
]


@pytest.fixture
def signed_in(client):
    headers, _ = register(client, email=ACCOUNT["email"], password=ACCOUNT["password"])
    conversation = client.post(f"{API}/conversations", json={"tool": "coach"}, headers=headers)
    assert conversation.status_code == 201
    return headers, conversation.get_json()["id"]


def _send(client, method: str, url: str, body, headers=None):
    """Send `body` as JSON text spelled as Python spells it: NUL as \\u0000, a lone
    surrogate as \\ud800 (both valid JSON escapes)."""
    return client.open(
        f"{API}{url}", method=method, data=json.dumps(body), content_type="application/json", headers=headers
    )


def _assert_refused(response, location: str, path: tuple[str, ...], says: str, status: int = 422):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["code"] == status and body["status"] and "errors" in body["message"]
    node = body["errors"][location]
    for part in path:
        node = node[part]
    assert len(node) == 1 and says in node[0], node


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize(("method", "url", "body", "path"), REQUESTS)
def test_unstorable_text_in_a_field_is_422_naming_it(client, signed_in, method, url, body, path, kind):
    headers, conversation = signed_in
    url = url.format(conversation=conversation)
    response = _send(client, method, url, _with(body, path, BAD[kind]), headers=headers)
    _assert_refused(response, "json", path, SAYS[kind])


@pytest.mark.parametrize("kind", BAD)
def test_the_gate_runs_before_authentication(client, kind):
    response = _send(client, "POST", "/jobs", {"tool": "text", "input": {"prompt": BAD[kind]}})
    _assert_refused(response, "json", ("input", "prompt"), SAYS[kind])


@pytest.mark.parametrize("kind", BAD)
def test_a_key_with_unstorable_text_is_named_as_json_spells_it(client, signed_in, kind):
    headers, _ = signed_in
    response = _send(client, "POST", "/jobs", {"tool": "text", "input": {f"pro{BAD[kind]}mpt": "x"}}, headers)
    spelled = json.dumps(f"pro{BAD[kind]}mpt")[1:-1]  # pro\u0000mpt
    _assert_refused(response, "json", ("input", spelled), "This key contains a " + SAYS[kind])


def test_strings_deep_in_lists_are_named_by_their_index(client, signed_in):
    headers, _ = signed_in
    body = {"tool": "coach", "input": {"message": "hi", "history": [{"role": "user", "content": "ok"}]}}
    body["input"]["history"].append({"role": "assistant", "content": NUL})
    response = _send(client, "POST", "/jobs", body, headers)
    _assert_refused(response, "json", ("input", "history", "1", "content"), "NUL")


def test_a_nul_in_the_query_string_is_422_naming_the_parameter(client, signed_in):
    headers, _ = signed_in
    response = client.get(f"{API}/jobs?tool=%00", headers=headers)
    _assert_refused(response, "query", ("tool",), "NUL")
    response = client.get(f"{API}/jobs?tool=te%00xt&status=queued", headers=headers)
    _assert_refused(response, "query", ("tool",), "NUL")


def test_a_nul_in_a_query_the_route_does_not_declare_is_400(client):
    response = client.get(f"{API}/health?probe=%00")
    _assert_refused(response, "query", ("probe",), "NUL", status=400)


def test_a_nul_in_a_path_value_is_refused(client):
    response = client.get(f"{API}/auth/verify-email/abc%00def")
    _assert_refused(response, "path", ("token",), "NUL")


def test_a_nul_in_the_idempotency_key_is_422(client, signed_in):
    headers, _ = signed_in
    response = submit(client, {**headers, "Idempotency-Key": "key\x00one"})
    _assert_refused(response, "headers", ("Idempotency-Key",), "NUL")


def test_a_route_without_a_body_schema_answers_400(client):
    response = _send(client, "POST", "/webhooks/stripe", {"id": NUL, "type": "x"})
    _assert_refused(response, "json", ("id",), "NUL", status=400)


def test_an_unknown_url_stays_404_whatever_its_body(client):
    response = _send(client, "POST", "/nothing-here", {"x": NUL})
    assert response.status_code == 404


# ---------------------------------------------------------------- depth


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def test_json_nested_a_thousand_deep_is_422_before_authentication(client):
    body = "[" * 1000 + "]" * 1000
    response = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    _assert_refused(response, "json", ("_schema",), f"deeper than {MAX_JSON_DEPTH}")
    response = client.post(f"{API}/jobs", data=body, content_type="application/json")
    _assert_refused(response, "json", ("_schema",), f"deeper than {MAX_JSON_DEPTH}")


def test_json_just_over_the_limit_is_refused_where_it_goes_too_deep(client, signed_in):
    headers, _ = signed_in
    # The body is level 1 and input level 2: the limit is passed at input.x.x...
    body = {"tool": "text", "input": {"prompt": "hi", "x": _nested(MAX_JSON_DEPTH - 1)}}
    response = _send(client, "POST", "/jobs", body, headers)
    path = ("input", *["x"] * (MAX_JSON_DEPTH - 1))
    _assert_refused(response, "json", path, f"deeper than {MAX_JSON_DEPTH}")


def test_json_at_the_limit_passes_the_gate(client, signed_in):
    headers, _ = signed_in
    body = {"tool": "text", "input": {"prompt": "hi", "x": _nested(MAX_JSON_DEPTH - 2)}}
    response = _send(client, "POST", "/jobs", body, headers)
    # The text tool refuses the unknown field: its own answer, not the gate's.
    assert response.status_code == 422
    assert "deeper" not in json.dumps(response.get_json())
    assert "x" in response.get_json()["errors"]["json"]["input"]


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("literal", "says"),
    [
        ("1e999999", "finite"),
        ("-1e999999", "finite"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        (str(2**63), "-2^63 and 2^63-1"),
        (str(-(2**63) - 1), "-2^63 and 2^63-1"),
        ("9" * 5000, "-2^63 and 2^63-1"),
        ("1" * 400 + ".5", "finite"),
    ],
)
def test_numbers_no_one_can_use_are_422(client, literal, says):
    body = '{"tool": "text", "input": {"prompt": "hi", "n": ' + literal + "}}"
    response = client.post(f"{API}/jobs", data=body, content_type="application/json")
    _assert_refused(response, "json", ("input", "n"), says)


def test_a_bad_number_as_a_whole_body_is_named_as_the_schema(client):
    response = client.post(f"{API}/auth/login", data="NaN", content_type="application/json")
    _assert_refused(response, "json", ("_schema",), "finite")


@pytest.mark.parametrize("number", [2**63 - 1, -(2**63), 1.5e308, 0.1])
def test_numbers_in_range_pass_the_gate(client, signed_in, number):
    headers, _ = signed_in
    response = submit(client, headers, input={"prompt": "hi"}, notify_email=False, n=number)
    assert response.status_code == 422  # `n` is no field of a job: the schema says so, not the gate
    assert response.get_json()["errors"]["json"] == {"n": ["Unknown field."]}


# ---------------------------------------------------------------- what still works


@pytest.mark.parametrize(
    "text",
    [
        "Crème brûlée à Zürich",
        "Queues 😀 and 🎉 and 𝄞 (a clef)",
        "日本語のテキスト",
        "a literal \\u0000 is just text",
    ],
)
def test_ordinary_text_goes_through_raw_or_escaped(client, signed_in, text):
    headers, _ = signed_in
    body = {"tool": "text", "input": {"prompt": text}}
    for data in (json.dumps(body), json.dumps(body, ensure_ascii=False)):  # "\ud83d\ude00" or raw UTF-8
        response = client.post(
            f"{API}/jobs", data=data.encode(), content_type="application/json", headers=headers
        )
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["input"] == {"prompt": text}
    patched = _send(client, "PATCH", "/users/me", {"name": text}, headers)
    assert patched.status_code == 200 and patched.get_json()["name"] == text


def test_invalid_json_is_still_the_views_400(client, signed_in):
    headers, _ = signed_in
    response = client.post(f"{API}/jobs", data='{"tool": ', content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert response.get_json()["message"] == "The request body is not valid JSON."
