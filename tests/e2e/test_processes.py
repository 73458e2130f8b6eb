"""The Procfile's own processes (gunicorn, prefork Celery workers) started by honcho,
as `make run` starts them, and the README walk-through over real HTTP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(method: str, url: str, body=None, token: str | None = None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


@pytest.fixture
def start_stack(tmp_path, fake_openai):
    """Start web and both workers with honcho; returns the API base URL."""
    processes = []

    def start(**overrides: str) -> str:
        port = free_port()
        empty_env = tmp_path / "empty.env"
        empty_env.write_text("")
        env = {
            **os.environ,
            "WEB_CONCURRENCY": "1",
            "AI_WORKER_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            **overrides,
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "--env",
                str(empty_env),
                "--port",
                str(port),
                "web",
                "worker_ai",
                "worker",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call("GET", f"{base}/health")[0] == 200:
                    return base
            except OSError:
                time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("web did not start:\n" + process.stdout.read().decode(errors="replace")[-3000:])

    yield start
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def register_and_submit(base: str, prompt: str) -> tuple[str, dict]:
    status, _, session = call(
        "POST",
        f"{base}/auth/register",
        {"email": "walk@example.com", "password": "a long password", "name": "Walk"},
    )
    assert status == 201
    token = session["access_token"]
    status, headers, job = call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": prompt}}, token)
    assert status == 202 and headers["Location"] == f"/api/v1/jobs/{job['id']}"
    return token, job


def poll(base: str, token: str, job: dict, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        status, _, job = call("GET", f"{base}/jobs/{job['id']}", token=token)
        assert status == 200
    return job


def test_make_run_processes_serve_the_walkthrough(start_stack):
    base = start_stack()
    token, job = register_and_submit(base, "Over HTTP")
    job = poll(base, token, job)
    assert job["status"] == "succeeded" and job["output"] == {"text": "Echo: Over HTTP"}
    assert call("GET", f"{base}/ready")[2]["checks"] == {"database": "ok", "redis": "ok"}


def test_the_soft_time_limit_ends_a_hung_provider_call_as_timeout(start_stack):
    base = start_stack(JOB_SOFT_TIME_LIMIT="1", JOB_HARD_TIME_LIMIT="5", OPENAI_TIMEOUT="30")
    token, job = register_and_submit(base, "Hang forever [[hang]]")
    job = poll(base, token, job, timeout=15)
    assert job["status"] == "failed"
    assert job["error"] == {"code": "timeout", "message": "The job ran longer than its 1 s limit."}
