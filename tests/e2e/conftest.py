import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.services import ROOT, celery_beat, celery_worker, free_port, in_netns, wait_until
from tests.helpers import call


def launch_stack(
    workdir: Path,
    processes=("web", "worker_ai", "worker", "maintenance"),
    port: int | None = None,
    *,
    netns: str | None = None,
    address: str = "127.0.0.1",
    **overrides: str,
) -> tuple[str, Callable[[], None]]:
    """Start Procfile processes with honcho, as `make run` does, on `port` (a free one unless
    given); returns the API base URL and a function that stops them. In network namespace
    `netns` (another host, tests/fakes/netns.py), the web is reached at `address`."""
    port = port or free_port()
    empty_env = workdir / f"empty-{port}.env"
    empty_env.write_text("")
    env = {
        **os.environ,
        "WEB_CONCURRENCY": "1",
        "AI_WORKER_CONCURRENCY": "2",
        "WORKER_CONCURRENCY": "1",
        "MAINTENANCE_WORKER_CONCURRENCY": "1",
        "BEAT_SCHEDULE_FILE": str(workdir / f"beat-{port}"),
        # Metrics files of this stack only; workers serve none unless a test asks (fixed ports
        # would collide with other runs on the machine).
        "METRICS_DIR": str(workdir / f"metrics-{port}"),
        "WORKER_AI_METRICS_PORT": "0",
        "WORKER_METRICS_PORT": "0",
        "WORKER_MAINTENANCE_METRICS_PORT": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PUBLIC_BASE_URL": f"http://{address}:{port}",  # the links it hands out lead to itself
        **overrides,
    }
    log = (workdir / f"stack-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            *in_netns(netns),
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

    def stop() -> None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()

    base = f"http://{address}:{port}/api/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:  # honcho stops when one does
        try:
            if call("GET", f"{base}/health")[0] == 200:
                return base, stop
        except OSError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("web did not start:\n" + Path(log.name).read_text(errors="replace")[-3000:])


@pytest.fixture
def start_stack(tmp_path, fake_openai):
    """Start Procfile processes with honcho, as `make run` does; returns the API base URL.

    `start_stack(REDIS_URL=...)` overrides the environment; `processes=` picks the lines."""
    stops = []

    def start(processes=("web", "worker_ai", "worker", "maintenance"), **overrides: str) -> str:
        base, stop = launch_stack(tmp_path, processes, **overrides)
        stops.append(stop)
        return base

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def env() -> dict[str, str]:
    """The environment of the Celery processes a test starts (`processes`); a module
    overrides it with the timings its faults need."""
    return dict(os.environ)


@pytest.fixture
def processes(env, tmp_path):
    """(start_worker, start_beat): Celery worker and beat subprocesses with `env`. A
    worker is waited for until it is ready; `start_worker` takes celery_worker's options
    (queues, concurrency, pool). All are stopped after the test."""
    started = []

    def start_worker(name: str = "worker", **options):
        worker = celery_worker(env, tmp_path / f"{name}.log", name=name, **options)
        started.append(worker)
        wait_until(lambda: "ready." in worker.log(), 30, message=f"{name} to be ready")
        return worker

    def start_beat():
        beat = celery_beat(env, tmp_path / "beat.log", tmp_path / "beat-schedule")
        started.append(beat)
        return beat

    yield start_worker, start_beat
    for process in started:
        process.stop()
