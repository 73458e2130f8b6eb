"""The emailed links of an account: the one that verifies its address, and the one that
resets its password."""

from __future__ import annotations

import time
import uuid

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from db.models import EmailOutbox, User
from db.session import session_scope
from tasks.accounts import SEND_PASSWORD_RESET, send_password_reset
from tests.helpers import API, PASSWORD, assert_error, bearer, login, queued_tasks, refresh, register

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
