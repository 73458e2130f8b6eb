"""`flask users set-role`: an operator makes an account an admin (or a plain user again)
from the command line, and the admin API and the audit log show it."""

import pytest

from tests.helpers import API, register

QUEUES = f"{API}/admin/queues"
AUDIT_LOG = f"{API}/admin/audit-log"


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def set_role(runner, email: str, role: str):
    return runner.invoke(args=["users", "set-role", email, role])


def test_promoting_a_user_lets_their_token_use_the_admin_api_at_once(client, runner):
    headers, body = register(client, email="ops@example.com", name="Ops")
    assert client.get(QUEUES, headers=headers).status_code == 403

    result = set_role(runner, "  OPS@Example.com ", "admin")  # matched as login matches it
    assert result.exit_code == 0, result.output
    assert result.stdout == "ops@example.com: role user -> admin.\n" and result.stderr == ""

    assert client.get(QUEUES, headers=headers).status_code == 200  # the role is read per request
    login = client.post(
        f"{API}/auth/login", json={"email": "ops@example.com", "password": "correct horse battery"}
    )
    assert login.get_json()["user"]["role"] == "admin"
    assert client.get(f"{API}/users/me", headers=headers).get_json()["role"] == "admin"

    [entry] = client.get(AUDIT_LOG, headers=headers).get_json()["items"]
    assert entry["action"] == "user.set_role" and entry["target_type"] == "user"
    assert entry["target_id"] == body["user"]["id"]
    assert entry["actor_id"] is None and entry["actor_email"].startswith("cli")
    assert entry["details"] == {"email": "ops@example.com", "was": "user", "role": "admin"}


def test_demoting_an_admin_takes_the_admin_api_away(client, runner):
    headers, _ = register(client, email="ops@example.com", name="Ops")
    auditor, _ = register(client, email="auditor@example.com", name="Auditor")
    assert set_role(runner, "ops@example.com", "admin").exit_code == 0
    assert set_role(runner, "auditor@example.com", "admin").exit_code == 0
    assert client.get(QUEUES, headers=headers).status_code == 200

    result = set_role(runner, "ops@example.com", "user")
    assert result.exit_code == 0 and result.stdout == "ops@example.com: role admin -> user.\n"
    response = client.get(QUEUES, headers=headers)
    assert response.status_code == 403 and response.get_json()["message"] == "This needs an admin account."

    page = client.get(AUDIT_LOG, headers=auditor, query_string={"action": "user.set_role"}).get_json()
    entries = page["items"]
    assert [(e["details"]["email"], e["details"]["was"], e["details"]["role"]) for e in entries] == [
        ("ops@example.com", "admin", "user"),
        ("auditor@example.com", "user", "admin"),
        ("ops@example.com", "user", "admin"),
    ]


def test_the_role_it_already_has_changes_nothing_and_is_not_audited(client, runner):
    headers, _ = register(client, email="ops@example.com", name="Ops")
    assert set_role(runner, "ops@example.com", "admin").exit_code == 0

    result = set_role(runner, "ops@example.com", "admin")
    assert result.exit_code == 0
    assert result.stdout == "ops@example.com already has the role admin; nothing changed.\n"
    assert len(client.get(AUDIT_LOG, headers=headers).get_json()["items"]) == 1


def test_an_unknown_email_fails_with_a_message(client, runner):
    register(client, email="ops@example.com", name="Ops")
    result = set_role(runner, "Nobody@Example.com", "admin")
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr == "Error: No account has the email nobody@example.com.\n"


def test_an_unknown_role_is_refused_before_anything_is_read(client, runner):
    headers, _ = register(client, email="ops@example.com", name="Ops")
    result = set_role(runner, "ops@example.com", "superuser")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.endswith(
        "Error: Invalid value for '{user|admin}': 'superuser' is not one of 'user', 'admin'.\n"
    )
    assert client.get(QUEUES, headers=headers).status_code == 403


def test_a_closed_account_is_refused(client, runner):
    headers, _ = register(client, email="gone@example.com", name="Gone")
    assert client.delete(f"{API}/users/me", headers=headers).status_code == 202

    result = set_role(runner, "gone@example.com", "admin")
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr == (
        "Error: The account gone@example.com was closed (it is being deleted); its role stays user.\n"
    )
    admin, _ = register(client, email="ops@example.com", name="Ops")
    assert set_role(runner, "ops@example.com", "admin").exit_code == 0
    assert [e["details"]["email"] for e in client.get(AUDIT_LOG, headers=admin).get_json()["items"]] == [
        "ops@example.com"
    ]
