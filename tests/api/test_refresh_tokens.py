"""Rotating refresh tokens: each refresh uses up its token, a reused one ends its whole
family, and logging out ends the session."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import select

from db.models import RefreshToken
from db.session import session_scope
from tests.helpers import API, PASSWORD, assert_error, bearer, login, refresh, register


def family_rows(user_id: str) -> list[RefreshToken]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(RefreshToken)
                .where(RefreshToken.user_id == uuid.UUID(user_id))
                .order_by(RefreshToken.created_at)
            )
        )


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
