"""Small helpers the tests share: accounts through the API, and waiting on jobs."""

from __future__ import annotations

import time
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
