"""API keys: created with the secret shown once, stored hashed, listed, revoked (one
by one, or all by a password reset), and accepted as `X-API-Key` on the job API but
never for managing keys or the account, its webhook secret or its export."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy import select, update

from db.models import ApiKey, EmailOutbox
from db.session import session_scope
from tasks.accounts import SEND_PASSWORD_RESET, send_password_reset
from tests.helpers import API, queued_tasks, register, submit

KEY_FORMAT = re.compile(r"^cvk_[0-9a-f]{8}_[A-Za-z0-9_-]{32,}$")


def create_key(client, headers, name: str = "build server") -> dict:
    response = client.post(f"{API}/api-keys", headers=headers, json={"name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def stored(key_id: str) -> ApiKey:
    with session_scope() as session:
        return session.get(ApiKey, uuid.UUID(key_id))


def test_create_shows_the_secret_once_and_stores_only_its_hash(client):
    headers, _ = register(client)
    created = create_key(client, headers, name="  nightly export  ")
    assert set(created) >= {"id", "name", "prefix", "key", "created_at"}
    assert KEY_FORMAT.match(created["key"]), created["key"]
    assert created["key"].startswith(created["prefix"] + "_") and len(created["prefix"]) == 12
    assert created["name"] == "nightly export"

    row = stored(created["id"])
    assert row.key_hash != created["key"] and created["key"] not in row.key_hash
    assert row.prefix == created["prefix"]

    listed = client.get(f"{API}/api-keys", headers=headers).get_json()["items"]
    assert listed == [
        {
            "id": created["id"],
            "name": "nightly export",
            "prefix": created["prefix"],
            "created_at": created["created_at"],
            "last_used_at": None,
            "revoked_at": None,
        }
    ]


def test_a_key_works_on_the_job_api_as_its_owner(client):
    headers, session = register(client)
    key = create_key(client, headers)["key"]

    submitted = submit(client, key_header(key))
    assert submitted.status_code == 202
    job_id = submitted.get_json()["id"]
    assert client.get(f"{API}/jobs/{job_id}", headers=key_header(key)).status_code == 200
    assert client.get(f"{API}/jobs/{job_id}", headers=headers).status_code == 200  # the same owner
    listed = client.get(f"{API}/jobs", headers=key_header(key)).get_json()["items"]
    assert [job["id"] for job in listed] == [job_id]
    me = client.get(f"{API}/users/me", headers=key_header(key)).get_json()
    assert me["id"] == session["user"]["id"]


def test_a_key_cannot_see_another_users_job(client):
    mine, _ = register(client)
    theirs, _ = register(client)
    job_id = submit(client, theirs).get_json()["id"]
    key = create_key(client, mine)["key"]
    response = client.get(f"{API}/jobs/{job_id}", headers=key_header(key))
    assert response.status_code == 404


def test_last_used_at_is_recorded_at_most_once_a_minute(client):
    headers, _ = register(client)
    created = create_key(client, headers)
    client.get(f"{API}/jobs", headers=key_header(created["key"]))
    first = stored(created["id"]).last_used_at
    assert first is not None

    client.get(f"{API}/jobs", headers=key_header(created["key"]))
    assert stored(created["id"]).last_used_at == first  # no write for a use within the minute

    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    with session_scope() as session:
        session.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])).values(last_used_at=earlier)
        )
    client.get(f"{API}/jobs", headers=key_header(created["key"]))
    assert stored(created["id"]).last_used_at > earlier + dt.timedelta(minutes=1)
    listed = client.get(f"{API}/api-keys", headers=headers).get_json()["items"][0]
    assert listed["last_used_at"] is not None


def test_bad_and_revoked_keys_are_401_in_the_error_shape(client):
    headers, _ = register(client)
    created = create_key(client, headers)
    for bad in ("", "not-a-key", created["key"][:-1] + "X", "cvk_" + "a" * 200):
        response = client.get(f"{API}/jobs", headers=key_header(bad))
        body = response.get_json()
        assert response.status_code == 401 and body["code"] == 401 and body["status"] == "Unauthorized"
        assert "API key is not valid" in body["message"], bad

    assert client.delete(f"{API}/api-keys/{created['id']}", headers=headers).status_code == 204
    revoked = client.get(f"{API}/jobs", headers=key_header(created["key"]))
    assert revoked.status_code == 401 and "revoked" in revoked.get_json()["message"]
    listed = client.get(f"{API}/api-keys", headers=headers).get_json()["items"]
    assert listed[0]["revoked_at"] is not None
    # Revoking again changes nothing and is not an error.
    assert client.delete(f"{API}/api-keys/{created['id']}", headers=headers).status_code == 204


def test_another_users_key_is_404_and_stays_live(client):
    mine, _ = register(client)
    theirs, _ = register(client)
    their_key = create_key(client, theirs)
    response = client.delete(f"{API}/api-keys/{their_key['id']}", headers=mine)
    assert response.status_code == 404 and response.get_json()["code"] == 404
    assert client.delete(f"{API}/api-keys/{uuid.uuid4()}", headers=mine).status_code == 404
    assert client.get(f"{API}/jobs", headers=key_header(their_key["key"])).status_code == 200
    assert client.get(f"{API}/api-keys", headers=mine).get_json()["items"] == []


def test_a_key_cannot_manage_keys_or_the_account(client):
    headers, _ = register(client)
    created = create_key(client, headers)
    key = key_header(created["key"])
    attempts = [
        client.post(f"{API}/api-keys", headers=key, json={"name": "another"}),
        client.get(f"{API}/api-keys", headers=key),
        client.delete(f"{API}/api-keys/{created['id']}", headers=key),
        client.patch(f"{API}/users/me", headers=key, json={"name": "Mallory"}),
        client.delete(f"{API}/users/me", headers=key),
        client.post(f"{API}/auth/verify-email", headers=key),
        # What would let a leaked key forge webhooks or take every piece of data at once:
        client.get(f"{API}/users/me/webhook-secret", headers=key),
        client.post(f"{API}/users/me/webhook-secret/rotate", headers=key),
        client.post(f"{API}/users/me/export", headers=key),
    ]
    for response in attempts:
        assert response.status_code == 403, response.get_json()
        assert "API keys cannot manage" in response.get_json()["message"]
    assert stored(created["id"]).revoked_at is None
    assert client.get(f"{API}/users/me", headers=headers).get_json()["name"] == "Ada"


def test_keys_of_a_closed_account_stop_working_at_once(client):
    headers, _ = register(client)
    key = create_key(client, headers)["key"]
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202
    response = client.get(f"{API}/jobs", headers=key_header(key))
    assert response.status_code == 401 and "no longer exists" in response.get_json()["message"]


def test_a_password_reset_revokes_every_key_of_the_account(client, settings):
    headers, _ = register(client, email="leaked@example.com")
    keys = [create_key(client, headers, name=name)["key"] for name in ("ci", "laptop")]
    other_headers, _ = register(client)
    other_key = create_key(client, other_headers)["key"]
    client.post(f"{API}/auth/forgot-password", json={"email": "leaked@example.com"})
    for args in queued_tasks(SEND_PASSWORD_RESET):
        if args[0] == "leaked@example.com":
            send_password_reset(*args)
    with session_scope() as session:
        [email] = session.scalars(select(EmailOutbox).where(EmailOutbox.template == "password_reset")).all()
        token = email.context["link"].removeprefix(settings.reset_url_base)

    reset = client.post(f"{API}/auth/reset-password", json={"token": token, "password": "a new passphrase"})
    assert reset.status_code == 204
    for key in keys:
        response = client.get(f"{API}/jobs", headers=key_header(key))
        assert response.status_code == 401 and "revoked" in response.get_json()["message"]
    assert client.get(f"{API}/jobs", headers=key_header(other_key)).status_code == 200  # others' stay


def test_create_validates_the_name(client):
    headers, _ = register(client)
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}):
        response = client.post(f"{API}/api-keys", headers=headers, json=body)
        assert response.status_code == 422 and "name" in response.get_json()["errors"]["json"], body
    with session_scope() as session:
        assert session.scalars(select(ApiKey)).all() == []


def test_the_number_of_live_keys_is_capped(client, monkeypatch):
    from api.services import api_keys

    monkeypatch.setattr(api_keys, "MAX_ACTIVE_KEYS", 2)
    headers, _ = register(client)
    first = create_key(client, headers)
    create_key(client, headers)
    response = client.post(f"{API}/api-keys", headers=headers, json={"name": "third"})
    assert response.status_code == 409 and "revoke one" in response.get_json()["message"]
    client.delete(f"{API}/api-keys/{first['id']}", headers=headers)
    create_key(client, headers, name="third")


def test_the_openapi_document_describes_both_credentials(client):
    spec = client.get(f"{API}/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert {"apiKeyAuth": []} in spec["paths"]["/api/v1/jobs"]["post"]["security"]
    assert spec["paths"]["/api/v1/api-keys"]["post"]["security"] == [{"bearerAuth": []}]
