"""Small helpers the tests share: accounts through the API, and waiting on jobs."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from db.models.job import TERMINAL

API = "/api/v1"


def register(client, email: str | None = None, password: str = "correct horse battery", name: str = "Ada"):
    """Register through the API; returns (headers with the access token, response body)."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post(f"{API}/auth/register", json={"email": email, "password": password, "name": name})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return {"Authorization": f"Bearer {body['access_token']}"}, body


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
    token = session["access_token"]
    status, headers, job = call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": prompt}}, token)
    assert status == 202 and headers["Location"] == f"/api/v1/jobs/{job['id']}"
    return token, job


def poll(base: str, token: str, job: dict, timeout: float = 30) -> dict:
    """Poll over HTTP until the job is finished."""
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        status, _, job = call("GET", f"{base}/jobs/{job['id']}", token=token)
        assert status == 200, job
    return job
