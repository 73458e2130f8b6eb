"""Small helpers the tests share: accounts through the API, and waiting on jobs."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from db.models.job import TERMINAL

API = "/api/v1"
PASSWORD = "correct horse battery"  # what `register` signs up with unless told
# An environment production accepts: strong secrets and none of the development setup.
PRODUCTION_ENV = {
    "CONVEYOR_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET_KEY": "j" * 40,
    "MAIL_URL": "smtp://mail.example.com:587",
    "STORAGE_URL": "s3://conveyor-outputs",
    "AI_PROVIDER": "openai",
    "OPENAI_API_KEY": "sk-test",
    "PUBLIC_BASE_URL": "https://conveyor.example.com",
}


def register(
    client,
    email: str | None = None,
    password: str = PASSWORD,
    name: str = "Ada",
    verified: bool = True,
):
    """Register through the API; returns (headers with the access token, response body).
    `verified`: mark the email verified, as if its link had been opened (an unverified
    account has a smaller allowance); the body is as registration answered it."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post(f"{API}/auth/register", json={"email": email, "password": password, "name": name})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    if verified:
        mark_verified(body["user"]["id"], email)
    return {"Authorization": f"Bearer {body['access_token']}"}, body


def mark_verified(user_id: str, email: str) -> None:
    from db.repositories import users
    from db.session import session_scope

    with session_scope() as session:
        users.mark_email_verified(session, user_id=uuid.UUID(user_id), email=email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client, email: str, password: str = PASSWORD):
    return client.post(f"{API}/auth/login", json={"email": email, "password": password})


def refresh(client, refresh_token: str):
    return client.post(f"{API}/auth/refresh", headers=bearer(refresh_token))


def assert_error(response, status: int, fragment: str) -> None:
    """The response is an error of `status` in the one error shape, `fragment` in its message."""
    body = response.get_json()
    assert response.status_code == status, body
    assert body["code"] == status and body["status"] and fragment in body["message"], body


def queued_tasks(name: str, queue: str = "default") -> list[list[Any]]:
    """The positional args of each message for task `name` waiting in the broker's `queue`
    (in tests/api no worker consumes them, and earlier tests' messages stay), oldest first."""
    from celery import current_app

    with current_app.connection_for_write() as connection:
        raw = connection.default_channel.client.lrange(queue, 0, -1)
    found = []
    for message in map(json.loads, reversed(raw)):  # the broker pushes new messages on the left
        if message["headers"]["task"] == name:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append(args)
    return found


def submit(client, headers, tool: str = "text", input: dict[str, Any] | None = None, **extra):
    body = {"tool": tool, "input": input if input is not None else {"prompt": "Hello"}, **extra}
    return client.post(f"{API}/jobs", json=body, headers=headers)


def wait_for(client, headers, job_id: str, statuses=TERMINAL, timeout: float = 15.0) -> dict[str, Any]:
    """Poll GET /jobs/<id> as a client would until the job reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{API}/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.get_json()
        job = response.get_json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
        time.sleep(0.05)


# ---------------------------------------------------------------- over real HTTP


def call(method: str, url: str, body=None, token: str | None = None, headers: dict | None = None):
    """One HTTP request; returns (status, headers, parsed JSON body or None)."""
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def register_and_submit(base: str, prompt: str, email: str = "walk@example.com") -> tuple[str, dict]:
    status, _, session = call(
        "POST", f"{base}/auth/register", {"email": email, "password": "a long password", "name": "Walk"}
    )
    assert status == 201, session
    mark_verified(session["user"]["id"], email)
    token = session["access_token"]
    status, headers, job = call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": prompt}}, token)
    assert status == 202 and headers["Location"] == f"/api/v1/jobs/{job['id']}"
    return token, job


def poll(base: str, token: str, job: dict, timeout: float = 30) -> dict:
    """Poll over HTTP until the job is finished."""
    deadline = time.monotonic() + timeout
    while job["status"] in ("scheduled", "queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        status, _, job = call("GET", f"{base}/jobs/{job['id']}", token=token)
        assert status == 200, job
    return job
