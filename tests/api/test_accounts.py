"""Accounts: rotating refresh tokens, the profile, closing the account, roles, and
the emailed links that verify an address and reset a password."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from db.models import EmailOutbox, Job, RefreshToken, User
from db.session import session_scope
from tasks.accounts import SEND_PASSWORD_RESET, send_password_reset
from tests.helpers import API, queued_tasks, register, submit

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refresh(client, refresh_token: str):
    return client.post(f"{API}/auth/refresh", headers=bearer(refresh_token))


def login(client, email: str, password: str = PASSWORD):
    return client.post(f"{API}/auth/login", json={"email": email, "password": password})


def family_rows(user_id: str) -> list[RefreshToken]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(RefreshToken)
                .where(RefreshToken.user_id == uuid.UUID(user_id))
                .order_by(RefreshToken.created_at)
            )
        )


def assert_error(response, status: int, fragment: str) -> None:
    body = response.get_json()
    assert response.status_code == status, body
    assert body["code"] == status and body["status"] and fragment in body["message"], body


# ---------------------------------------------------------------- refresh rotation


def test_refresh_returns_a_new_access_and_refresh_token_and_uses_up_the_old_one(client):
    _, session = register(client)
    first = refresh(client, session["refresh_token"])
    assert first.status_code == 200
    body = first.get_json()
    assert body["access_token"] and body["refresh_token"] != session["refresh_token"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert client.get(f"{API}/users/me", headers=bearer(body["access_token"])).status_code == 200

    second = refresh(client, body["refresh_token"])  # the new one works in its turn
    assert second.status_code == 200

    rows = family_rows(session["user"]["id"])
    assert len(rows) == 3 and len({row.family_id for row in rows}) == 1
    assert [row.used_at is not None for row in rows] == [True, True, False]
    assert all(row.revoked_at is None for row in rows)


def test_reusing_a_refresh_token_revokes_its_whole_family(client):
    _, session = register(client)
    rotated = refresh(client, session["refresh_token"]).get_json()

    reused = refresh(client, session["refresh_token"])
    assert_error(reused, 401, "already used")

    # The thief's or the owner's next tokens, whichever came first, are dead too.
    assert refresh(client, rotated["refresh_token"]).status_code == 401
    me = client.get(f"{API}/users/me", headers=bearer(rotated["access_token"]))
    assert_error(me, 401, "revoked")
    assert client.get(f"{API}/users/me", headers=bearer(session["access_token"])).status_code == 401
    assert all(row.revoked_at is not None for row in family_rows(session["user"]["id"]))


def test_reuse_revokes_only_that_family_not_other_logins(client):
    _, session = register(client, email="two@example.com", password=PASSWORD)
    other = login(client, "two@example.com").get_json()
    refresh(client, session["refresh_token"])
    assert refresh(client, session["refresh_token"]).status_code == 401

    assert client.get(f"{API}/users/me", headers=bearer(other["access_token"])).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_concurrent_refreshes_with_one_token_let_exactly_one_through_and_end_the_family(app):
    for _ in range(3):
        client = app.test_client()
        _, session = register(client)
        barrier = threading.Barrier(2)
        results: list[int] = []

        def attempt(token: str, barrier: threading.Barrier, results: list[int]) -> None:
            own_client = app.test_client()
            barrier.wait()
            results.append(refresh(own_client, token).status_code)

        args = (session["refresh_token"], barrier, results)
        threads = [threading.Thread(target=attempt, args=args) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(results) == [200, 401]
        rows = family_rows(session["user"]["id"])
        assert len(rows) == 2  # the first token and the one successor
        assert all(row.revoked_at is not None for row in rows)


def test_logout_with_the_access_token_alone_ends_its_session(client):
    headers, session = register(client)
    assert client.post(f"{API}/auth/logout", headers=headers, json={}).status_code == 204
    assert_error(refresh(client, session["refresh_token"]), 401, "revoked")
    assert all(row.revoked_at is not None for row in family_rows(session["user"]["id"]))


def test_logout_with_the_refresh_token_as_bearer_ends_its_session(client):
    _, session = register(client)
    response = client.post(f"{API}/auth/logout", headers=bearer(session["refresh_token"]), json={})
    assert response.status_code == 204
    assert client.get(f"{API}/users/me", headers=bearer(session["access_token"])).status_code == 401


def test_a_refresh_token_with_no_record_is_refused(client, app):
    from flask_jwt_extended import create_refresh_token

    _, session = register(client)
    with app.app_context():
        unknown = create_refresh_token(identity=session["user"]["id"])
    assert_error(refresh(client, unknown), 401, "not known")


# ---------------------------------------------------------------- the profile


def test_patch_me_changes_the_name_and_merges_the_profile(client):
    headers, _ = register(client)
    first = client.patch(
        f"{API}/users/me",
        headers=headers,
        json={"name": "Ada L.", "profile": {"industry": "aviation", "goals": ["fly", "teach"]}},
    )
    assert first.status_code == 200
    assert first.get_json()["name"] == "Ada L."
    assert first.get_json()["profile"] == {"industry": "aviation", "goals": ["fly", "teach"]}

    second = client.patch(
        f"{API}/users/me", headers=headers, json={"profile": {"locale": "fr", "industry": None}}
    )
    assert second.status_code == 200
    assert second.get_json()["profile"] == {"goals": ["fly", "teach"], "locale": "fr"}
    assert (
        client.get(f"{API}/users/me", headers=headers).get_json()["profile"] == second.get_json()["profile"]
    )


def test_the_profile_reaches_the_prompt_a_tool_builds(client):
    from workers.tools.base import describe_profile

    headers, session = register(client)
    client.patch(f"{API}/users/me", headers=headers, json={"profile": {"career_stage": "senior"}})
    with session_scope() as db:
        user = db.get(User, uuid.UUID(session["user"]["id"]))
        assert "Career stage: senior" in describe_profile(user.profile)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"profile": {"shoe_size": "42"}}, "shoe_size", "Allowed: name, locale, career_stage"),
        ({"profile": {"industry": "x" * 501}}, "industry", "at most 500 characters"),
        ({"profile": {"skills": ["a"] * 21}}, "skills", "at most 20"),
        ({"profile": {"skills": [1, 2]}}, "skills", "string"),
        ({"profile": {"goals": {"nested": "no"}}}, "goals", "string"),
    ],
)
def test_patch_me_refuses_a_bad_profile_naming_the_fix(client, body, field, fragment):
    headers, _ = register(client)
    response = client.patch(f"{API}/users/me", headers=headers, json=body)
    assert response.status_code == 422
    messages = response.get_json()["errors"]["json"]["profile"][field]
    assert any(fragment in message for message in messages), messages


def test_patch_me_cannot_change_the_email_or_blank_the_name(client):
    headers, session = register(client)
    response = client.patch(f"{API}/users/me", headers=headers, json={"email": "new@example.com"})
    assert response.status_code == 422
    assert "cannot be changed" in response.get_json()["errors"]["json"]["email"][0]
    blank = client.patch(f"{API}/users/me", headers=headers, json={"name": "   "})
    assert blank.status_code == 422 and "name" in blank.get_json()["errors"]["json"]
    me = client.get(f"{API}/users/me", headers=headers).get_json()
    assert me["email"] == session["user"]["email"] and me["name"] == "Ada"


# ---------------------------------------------------------------- closing the account


def test_delete_me_locks_the_account_out_at_once(client):
    headers, session = register(client, email="gone@example.com", password=PASSWORD)
    response = client.delete(f"{API}/users/me", headers=headers)
    assert response.status_code == 202
    assert response.get_json()["status"] == "deleting"

    assert_error(client.get(f"{API}/users/me", headers=headers), 401, "")
    assert refresh(client, session["refresh_token"]).status_code == 401
    assert_error(login(client, "gone@example.com"), 401, "email or password is incorrect")
    with session_scope() as db:
        assert db.get(User, uuid.UUID(session["user"]["id"])).deleted_at is not None


def test_the_deletion_task_removes_the_user_and_their_jobs(client):
    from workers import storage
    from workers.accounts import delete_user

    headers, session = register(client)
    job_id = submit(client, headers).get_json()["id"]
    user_id = uuid.UUID(session["user"]["id"])
    storage.get_storage().put(f"users/{user_id}/jobs/{job_id}/output.json", b"{}", "application/json")
    client.delete(f"{API}/users/me", headers=headers)

    assert delete_user(user_id) is True
    assert storage.delete_prefix(f"users/{user_id}/") == 0  # their stored objects went with them
    assert delete_user(user_id) is False  # a second delivery finds nothing to do
    with session_scope() as db:
        assert db.get(User, user_id) is None
        assert db.get(Job, uuid.UUID(job_id)) is None
        assert db.scalars(select(RefreshToken).where(RefreshToken.user_id == user_id)).all() == []
    # The address is free again.
    assert (
        client.post(
            f"{API}/auth/register",
            json={"email": session["user"]["email"], "password": PASSWORD, "name": "A"},
        ).status_code
        == 201
    )


def test_the_deletion_task_leaves_an_account_that_was_not_closed(client):
    from workers.accounts import delete_user

    _, session = register(client)
    user_id = uuid.UUID(session["user"]["id"])
    assert delete_user(user_id) is False
    with session_scope() as db:
        assert db.get(User, user_id) is not None


# ---------------------------------------------------------------- roles


def test_admin_required_lets_only_admins_through(app):
    from api.auth import admin_required

    app.add_url_rule("/admin-probe", "admin_probe", admin_required(lambda: {"ok": True}))
    client = app.test_client()
    headers, session = register(client)

    assert_error(client.get("/admin-probe"), 401, "Authentication is required")
    assert_error(client.get("/admin-probe", headers=headers), 403, "admin account")
    with session_scope() as db:
        db.get(User, uuid.UUID(session["user"]["id"])).role = "admin"
    assert client.get("/admin-probe", headers=headers).get_json() == {"ok": True}
    assert_error(client.get("/admin-probe", headers={"X-API-Key": "cvk_whatever"}), 403, "API keys cannot")


# ---------------------------------------------------------------- email verification


def reset_tasks(*addresses: str) -> list[list[str]]:
    """The reset tasks forgot-password queued for these addresses (email, request id)."""
    return [args for args in queued_tasks(SEND_PASSWORD_RESET) if args[0] in addresses]


def run_password_reset_tasks(*addresses: str) -> list[bool]:
    """Run the reset tasks queued for these addresses, as a worker would; whether each emailed."""
    return [send_password_reset(*args) for args in reset_tasks(*addresses)]


def rendered(email: EmailOutbox) -> str:
    from settings import get_settings
    from workers.mail import rendering

    result = rendering.render(email.template, email.context, settings=get_settings())
    return result.subject + result.text + result.html


def outbox(template: str, to: str) -> list[EmailOutbox]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(EmailOutbox)
                .where(EmailOutbox.template == template, EmailOutbox.to_address == to)
                .order_by(EmailOutbox.created_at)
            )
        )


def token_of(email: EmailOutbox, marker: str) -> str:
    link = email.context["link"]
    assert marker in link, link
    return link.split(marker, 1)[1]


def test_registration_queues_a_verification_email_whose_link_verifies(client, settings):
    headers, session = register(client, email="verify@example.com", name="Vera", verified=False)
    assert session["user"]["email_verified"] is False
    [email] = outbox("verify_email", "verify@example.com")
    # Whoever registers may not own the address: nothing they chose goes in the email.
    assert "Vera" not in str(email.context) and "Vera" not in rendered(email)
    assert email.context["link"].startswith(f"{settings.public_base_url}/api/v1/auth/verify-email/")

    path = email.context["link"].removeprefix(settings.public_base_url)
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {"email_verified": True, "already_verified": False}
    assert client.get(f"{API}/users/me", headers=headers).get_json()["email_verified"] is True

    again = client.get(path)  # single use by nature: a second click changes nothing
    assert again.status_code == 200 and again.get_json()["already_verified"] is True


def past_token(settings, salt: str, payload: dict, age: int) -> str:
    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    return URLSafeTimedSerializer(settings.secret_key, salt=salt, signer=Earlier).dumps(payload)


def test_a_verification_link_that_expired_or_was_tampered_with_is_refused(client, settings):
    from api.services.accounts import VERIFY_SALT

    _, session = register(client, email="late@example.com")
    token = token_of(outbox("verify_email", "late@example.com")[0], "/verify-email/")

    tampered = client.get(f"{API}/auth/verify-email/{token[:-2]}xx")
    assert_error(tampered, 400, "not valid")
    payload = {"u": session["user"]["id"], "e": "late@example.com"}
    expired = past_token(settings, VERIFY_SALT, payload, settings.email_verification_ttl + 5)
    assert_error(client.get(f"{API}/auth/verify-email/{expired}"), 410, "expired")
    assert_error(client.get(f"{API}/auth/verify-email/not-a-token"), 400, "not valid")


def test_the_verification_email_can_be_sent_again_until_verified(client, settings):
    headers, _ = register(client, email="again@example.com", verified=False)
    response = client.post(f"{API}/auth/verify-email", headers=headers)
    assert response.status_code == 202
    assert client.post(f"{API}/auth/verify-email", headers=headers).status_code == 202
    assert len(outbox("verify_email", "again@example.com")) == 2  # one more, not one per click

    client.get(
        outbox("verify_email", "again@example.com")[-1].context["link"].removeprefix(settings.public_base_url)
    )
    assert_error(client.post(f"{API}/auth/verify-email", headers=headers), 409, "already verified")


# ---------------------------------------------------------------- password reset


def test_forgot_password_answers_and_enqueues_the_same_whether_or_not_the_account_exists(client, settings):
    register(client, email="known@example.com", name="Kim")
    known = client.post(f"{API}/auth/forgot-password", json={"email": "Known@Example.com"})
    unknown = client.post(f"{API}/auth/forgot-password", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json()
    # The same work either way (one task with the address): the time taken does not tell.
    addresses = ("known@example.com", "nobody@example.com")
    assert [address for address, _request_id in reset_tasks(*addresses)] == list(addresses)
    assert outbox("password_reset", "known@example.com") == []  # the task looks the account up

    assert run_password_reset_tasks(*addresses) == [True, False]
    [email] = outbox("password_reset", "known@example.com")
    assert "Kim" not in str(email.context) and "Kim" not in rendered(email)
    assert email.context["expires_in_minutes"] == settings.password_reset_ttl // 60
    assert email.context["link"].startswith(settings.reset_url_base)
    assert outbox("password_reset", "nobody@example.com") == []


def test_the_reset_task_queues_one_email_however_often_it_runs(client):
    register(client, email="twice@example.com")
    client.post(f"{API}/auth/forgot-password", json={"email": "twice@example.com"})
    [args] = reset_tasks("twice@example.com")
    assert send_password_reset(*args) is True
    assert send_password_reset(*args) is False  # a redelivered message
    assert len(outbox("password_reset", "twice@example.com")) == 1


def test_reset_password_sets_the_password_once_and_ends_every_session(client, settings):
    _, session = register(client, email="reset@example.com", password=PASSWORD)
    other = login(client, "reset@example.com").get_json()
    client.post(f"{API}/auth/forgot-password", json={"email": "reset@example.com"})
    run_password_reset_tasks("reset@example.com")
    token = (
        outbox("password_reset", "reset@example.com")[0].context["link"].removeprefix(settings.reset_url_base)
    )

    response = client.post(
        f"{API}/auth/reset-password", json={"token": token, "password": "a new passphrase"}
    )
    assert response.status_code == 204

    assert login(client, "reset@example.com").status_code == 401
    assert login(client, "reset@example.com", "a new passphrase").status_code == 200
    for old in (session, other):
        assert refresh(client, old["refresh_token"]).status_code == 401
        assert client.get(f"{API}/users/me", headers=bearer(old["access_token"])).status_code == 401

    again = client.post(f"{API}/auth/reset-password", json={"token": token, "password": "third passphrase"})
    assert_error(again, 410, "already been used")
    assert login(client, "reset@example.com", "a new passphrase").status_code == 200
    with session_scope() as db:
        assert db.get(User, uuid.UUID(session["user"]["id"])).email_verified_at is not None


def test_a_guessable_new_password_is_refused_and_the_link_still_works(client, settings):
    register(client, email="weak@example.com", name="Weakly")
    client.post(f"{API}/auth/forgot-password", json={"email": "weak@example.com"})
    run_password_reset_tasks("weak@example.com")
    link = outbox("password_reset", "weak@example.com")[0].context["link"]
    token = link.removeprefix(settings.reset_url_base)

    for weak in ("12345678", "weak@example.com", "Weakly2024"):  # common, her address, her name
        response = client.post(f"{API}/auth/reset-password", json={"token": token, "password": weak})
        assert_error(response, 422, "too easy to guess")
        assert "password" in response.get_json()["errors"]["json"]
    response = client.post(
        f"{API}/auth/reset-password", json={"token": token, "password": "a new passphrase"}
    )
    assert response.status_code == 204


def test_reset_password_refuses_bad_expired_and_wrong_kind_tokens(client, settings):
    from workers.password_reset import RESET_SALT

    _, session = register(client, email="kinds@example.com")
    verify_token = token_of(outbox("verify_email", "kinds@example.com")[0], "/verify-email/")

    def reset(token: str):
        return client.post(
            f"{API}/auth/reset-password", json={"token": token, "password": "a new passphrase"}
        )

    assert_error(reset("garbage"), 400, "not valid")
    assert_error(reset(verify_token), 400, "not valid")  # another purpose's salt
    expired = past_token(settings, RESET_SALT, {"u": session["user"]["id"], "p": "x"}, 4000)
    assert_error(reset(expired), 410, "expired")
    short = client.post(f"{API}/auth/reset-password", json={"token": "t", "password": "short"})
    assert short.status_code == 422 and "password" in short.get_json()["errors"]["json"]
