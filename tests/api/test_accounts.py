"""Accounts: the profile, closing the account, and roles."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from db.models import Job, RefreshToken, User
from db.session import session_scope
from tests.helpers import API, PASSWORD, assert_error, login, refresh, register, submit

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
