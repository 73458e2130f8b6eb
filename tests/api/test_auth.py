import pytest

from tests import rows
from tests.helpers import API, register


def test_register_returns_tokens_and_the_user(client):
    response = client.post(
        f"{API}/auth/register", json={"email": "Ada@Example.com", "password": "long enough pw", "name": "Ada"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["access_token"] and body["refresh_token"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["plan"] == "free" and body["user"]["role"] == "user"
    assert "password" not in body["user"] and "password_hash" not in body["user"]


def test_email_is_unique_whatever_its_case(client):
    register(client, email="grace@example.com")
    response = client.post(
        f"{API}/auth/register",
        json={"email": "GRACE@example.COM", "password": "another password", "name": "G"},
    )
    assert response.status_code == 409
    assert "already exists" in response.get_json()["message"]


def test_login_with_any_case_of_the_email(client):
    register(client, email="linus@example.com", password="s3cret passphrase")
    response = client.post(
        f"{API}/auth/login", json={"email": "Linus@Example.com", "password": "s3cret passphrase"}
    )
    assert response.status_code == 200
    assert response.get_json()["user"]["email"] == "linus@example.com"


def test_wrong_password_and_unknown_email_get_the_same_401(client):
    register(client, email="ken@example.com", password="right password")
    wrong = client.post(f"{API}/auth/login", json={"email": "ken@example.com", "password": "wrong password"})
    unknown = client.post(f"{API}/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.get_json()["message"] == unknown.get_json()["message"] == "The email or password is incorrect."
    )


def test_passwords_are_stored_as_argon2_hashes(client):
    from db.repositories import users
    from db.session import session_scope

    register(client, email="hash@example.com", password="plain text pw")
    with session_scope() as session:
        stored = users.get_by_email(session, email="hash@example.com").password_hash
    assert stored.startswith("$argon2id$") and "plain text pw" not in stored


def test_a_password_hashed_under_another_profile_logs_in_and_is_stored_again(client):
    """The suite hashes with PASSWORD_HASH_PROFILE=cheapest; an account whose hash was made
    with the production profile (64 MiB, 3 passes) still logs in, and the login stores the
    password again with the current profile."""
    from argon2 import PasswordHasher, profiles

    from db.repositories import users
    from db.session import session_scope

    register(client, email="old@example.com", password="an older passphrase")
    production = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY).hash("an older passphrase")
    with session_scope() as session:
        user = users.get_by_email(session, email="old@example.com")
        user.password_hash = production
    wrong = client.post(f"{API}/auth/login", json={"email": "old@example.com", "password": "not it at all"})
    assert wrong.status_code == 401
    with session_scope() as session:
        assert users.get_by_email(session, email="old@example.com").password_hash == production

    login = client.post(
        f"{API}/auth/login", json={"email": "old@example.com", "password": "an older passphrase"}
    )
    assert login.status_code == 200
    with session_scope() as session:
        stored = users.get_by_email(session, email="old@example.com").password_hash
    assert stored.startswith("$argon2id$") and "m=65536" in production and "m=65536" not in stored
    again = client.post(
        f"{API}/auth/login", json={"email": "old@example.com", "password": "an older passphrase"}
    )
    assert again.status_code == 200


def test_me_returns_the_caller(client):
    headers, body = register(client, name="Barbara")
    response = client.get(f"{API}/users/me", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["name"] == "Barbara"
    assert response.get_json()["id"] == body["user"]["id"]


def test_refresh_gives_a_new_access_token(client):
    _, body = register(client)
    response = client.post(
        f"{API}/auth/refresh", headers={"Authorization": f"Bearer {body['refresh_token']}"}
    )
    assert response.status_code == 200
    new_access = response.get_json()["access_token"]
    assert response.get_json()["refresh_token"] not in (None, body["refresh_token"])  # rotated
    me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {new_access}"})
    assert me.status_code == 200


def test_refresh_refuses_an_access_token(client):
    headers, _ = register(client)
    response = client.post(f"{API}/auth/refresh", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == 401


def test_an_access_endpoint_refuses_a_refresh_token(client):
    _, body = register(client)
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {body['refresh_token']}"})
    assert response.status_code == 401


def test_a_token_that_was_accepted_is_refused_once_it_expires(settings):
    # The web remembers tokens it has verified (api.extensions): never past their expiry.
    import dataclasses
    import time

    from api import create_app

    client = create_app(dataclasses.replace(settings, access_token_ttl=1)).test_client()
    headers, _ = register(client, verified=False)  # nothing between the token and its first use
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    time.sleep(2.1)
    response = client.get(f"{API}/users/me", headers=headers)
    assert response.status_code == 401 and "expired" in response.get_json()["message"]


def test_a_tampered_token_is_refused_even_after_the_real_one_was_accepted(client):
    headers, body = register(client)
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    header, payload, signature = body["access_token"].split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_logout_revokes_the_access_and_the_refresh_token(client):
    headers, body = register(client)
    response = client.post(
        f"{API}/auth/logout", headers=headers, json={"refresh_token": body["refresh_token"]}
    )
    assert response.status_code == 204

    me = client.get(f"{API}/users/me", headers=headers)
    assert me.status_code == 401
    assert "revoked" in me.get_json()["message"]
    refreshed = client.post(
        f"{API}/auth/refresh", headers={"Authorization": f"Bearer {body['refresh_token']}"}
    )
    assert refreshed.status_code == 401


def test_logout_cannot_revoke_someone_elses_refresh_token(client):
    mine, _ = register(client)
    _, theirs = register(client)
    client.post(f"{API}/auth/logout", headers=mine, json={"refresh_token": theirs["refresh_token"]})
    response = client.post(
        f"{API}/auth/refresh", headers={"Authorization": f"Bearer {theirs['refresh_token']}"}
    )
    assert response.status_code == 200


def test_access_tokens_live_fifteen_minutes(client, app):
    from flask_jwt_extended import decode_token

    _, body = register(client)
    with app.app_context():
        claims = decode_token(body["access_token"])
    assert claims["exp"] - claims["iat"] == 15 * 60


def test_missing_malformed_and_forged_tokens_are_401_in_the_error_shape(client):
    cases = [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"},
    ]
    for headers in cases:
        response = client.get(f"{API}/users/me", headers=headers)
        assert response.status_code == 401, headers
        body = response.get_json()
        assert body["code"] == 401 and body["status"] == "Unauthorized" and body["message"]


def test_register_validates_its_fields(client):
    response = client.post(
        f"{API}/auth/register", json={"email": "not-an-email", "password": "short", "name": ""}
    )
    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]
    assert set(errors) == {"email", "password", "name"}


@pytest.mark.parametrize(
    ("password", "advice"),
    [
        ("password", "top-10 common password"),
        ("12345678", "top-10 common password"),
        ("qwertyuiop", "common password"),
        ("grace.hopper1", "too easy to guess"),  # her own name and address
    ],
)
def test_a_guessable_password_is_refused_naming_the_field(client, password, advice):
    response = client.post(
        f"{API}/auth/register",
        json={"email": "grace.hopper@example.com", "password": password, "name": "Grace Hopper"},
    )
    body = response.get_json()
    assert response.status_code == 422 and body["status"] == "Unprocessable Entity", body
    assert advice in body["message"] and "too easy to guess" in body["message"]
    assert body["errors"]["json"]["password"] == [body["message"]]
    assert (
        client.post(
            f"{API}/auth/login", json={"email": "grace.hopper@example.com", "password": password}
        ).status_code
        == 401
    )


def test_only_the_start_of_a_very_long_password_is_scored(client):
    long = "correct horse battery staple " * 8  # 232 characters: within the 256 allowed
    register(client, email="long@example.com", password=long)


def test_an_account_with_an_old_weak_password_still_logs_in(client):
    from api.services import passwords

    rows.make_user(
        email="old@example.com", name="Old", verified=False, password_hash=passwords.hash_password("password")
    )
    response = client.post(f"{API}/auth/login", json={"email": "old@example.com", "password": "password"})
    assert response.status_code == 200
