import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.services import ROOT, free_port
from tests.helpers import call


@pytest.fixture
def start_stack(tmp_path, fake_openai):
    """Start Procfile processes with honcho, as `make run` does; returns the API base URL.

    `start_stack(REDIS_URL=...)` overrides the environment; `processes=` picks the lines."""
    started = []

    def start(processes=("web", "worker_ai", "worker"), **overrides: str) -> str:
        port = free_port()
        empty_env = tmp_path / f"empty-{port}.env"
        empty_env.write_text("")
        env = {
            **os.environ,
            "WEB_CONCURRENCY": "1",
            "AI_WORKER_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "1",
            "BEAT_SCHEDULE_FILE": str(tmp_path / f"beat-{port}"),
            # Metrics files of this stack only; workers serve none unless a test asks (fixed ports
            # would collide with other runs on the machine).
            "METRICS_DIR": str(tmp_path / f"metrics-{port}"),
            "WORKER_AI_METRICS_PORT": "0",
            "WORKER_METRICS_PORT": "0",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",  # the links it hands out lead to itself
            **overrides,
        }
        log = (tmp_path / f"stack-{port}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "--no-colour",
                "--env",
                str(empty_env),
                "--port",
                str(port),
                *processes,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((process, log))
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call("GET", f"{base}/health")[0] == 200:
                    return base
            except OSError:
                time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("web did not start:\n" + Path(log.name).read_text(errors="replace")[-3000:])

    yield start
    for process, log in started:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
