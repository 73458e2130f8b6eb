"""Operations through the Procfile's own processes (honcho, gunicorn, prefork Celery
workers, Flower): multiprocess metrics, a request id followed from the request to
the worker and the webhook in JSON logs, /ready naming each part that is down, and
Flower behind its password with state that survives a restart."""

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.services import ROOT, RedisServer, celery_worker, free_port, wait_until
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import call, poll, register_and_submit

pytestmark = pytest.mark.e2e


def metrics(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def stack_log(tmp_path: Path) -> list[dict]:
    """The JSON log lines of every process honcho ran (`12:00:00 web.1 | {...}`)."""
    entries = []
    for path in tmp_path.glob("stack-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            _, bar, rest = line.partition("| ")
            if bar and rest.startswith("{"):
                try:
                    entries.append(json.loads(rest))
                except json.JSONDecodeError:
                    continue
    return entries


def test_metrics_and_a_request_id_through_the_procfile_processes(start_stack, tmp_path):
    """Gunicorn with two workers and both prefork Celery workers, metrics in multiprocess
    mode, JSON logs: the counts add up across processes, and one request id leads from
    the submit to the worker's lines for that job and to its webhook delivery."""
    metrics_dir = tmp_path / "metrics"
    stale = metrics_dir / "web" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier run")
    ai_port, default_port = free_port(), free_port()
    receiver = WebhookReceiver().start()
    base = start_stack(
        WEB_CONCURRENCY="2",
        METRICS_DIR=str(metrics_dir),
        WORKER_AI_METRICS_PORT=str(ai_port),
        WORKER_METRICS_PORT=str(default_port),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    assert not stale.exists()  # emptied at start-up
    token, first = register_and_submit(base, "metrics over HTTP")
    others = [
        call("POST", f"{base}/jobs", {"tool": "text", "input": {"prompt": f"more {n}"}}, token)[2]
        for n in range(2)
    ]
    status, headers, traced = call(
        "POST",
        f"{base}/jobs",
        {"tool": "text", "input": {"prompt": "follow me"}, "webhook_url": receiver.url()},
        token,
        headers={"X-Request-ID": "trace-4b1d"},
    )
    assert status == 202 and headers["X-Request-ID"] == "trace-4b1d"
    finished = [poll(base, token, job) for job in (first, *others, traced)]
    assert {job["status"] for job in finished} == {"succeeded"}
    receiver.wait_for(1)
    receiver.stop()

    # Metrics: two gunicorn workers took the four submits between them; a scrape adds them up.
    web = metrics(f"{base}/metrics")
    assert value(web, "conveyor_jobs_submitted_total", tool="text", queue="ai") == 4
    assert value(web, "conveyor_http_requests_total", method="POST", route="/api/v1/jobs", status="202") == 4
    assert any(metrics_dir.joinpath("web").glob("counter_*.db"))
    assert value(web, "conveyor_queue_depth", queue="ai") == 0
    ai = f"http://127.0.0.1:{ai_port}/metrics"
    wait_until(
        lambda: (
            value(metrics(ai), "conveyor_jobs_finished_total", tool="text", status="succeeded", code="") == 4
        ),
        10,
        message="the AI worker's pool processes to report four jobs",
    )
    worker_ai = metrics(ai)
    assert value(worker_ai, "conveyor_job_queue_wait_seconds_count", tool="text", queue="ai") == 4
    output_tokens = sum(job["usage"]["output_tokens"] for job in finished)
    assert (
        value(worker_ai, "conveyor_tokens_total", model=finished[0]["model"], kind="output") == output_tokens
    )
    default = f"http://127.0.0.1:{default_port}/metrics"  # the other worker delivered the webhook
    wait_until(
        lambda: value(metrics(default), "conveyor_webhook_deliveries_total", outcome="delivered") == 1,
        10,
        message="the delivery to be counted",
    )
    assert (
        value(metrics(default), "conveyor_jobs_finished_total", tool="text", status="succeeded", code="") == 0
    )
    wait_until(lambda: call("GET", f"{base}/ready")[0] == 200, 20, message="every queue to have a worker")
    assert call("GET", f"{base}/ready")[2]["checks"] == {"database": "ok", "redis": "ok", "workers": "ok"}

    # Logs: the request id on the web's line, the worker's lines for the job, the webhook's.
    def traced_lines() -> list[dict]:
        return [entry for entry in stack_log(tmp_path) if entry.get("request_id") == "trace-4b1d"]

    wait_until(
        lambda: any(entry["logger"] == "workers.webhooks.delivery" for entry in traced_lines()),
        10,
        message="the webhook delivery's log line",
    )
    found = traced_lines()
    [access] = [entry for entry in found if entry["logger"] == "conveyor.access"]
    assert (access["method"], access["path"], access["status"]) == ("POST", "/api/v1/jobs", 202)
    worker_lines = [entry for entry in found if entry["logger"] == "workers.pipeline"]
    assert any(
        entry["message"].endswith(f"{traced['id']} started tool=text attempt=1") for entry in worker_lines
    )
    assert all(entry["job_id"] == traced["id"] for entry in worker_lines)
    assert all(entry["task"] == "conveyor.generation.run" for entry in worker_lines)
    [delivered] = [entry for entry in found if entry["logger"] == "workers.webhooks.delivery"]
    assert delivered["job_id"] == traced["id"] and " delivered " in delivered["message"]
    assert delivered["task"] == "conveyor.webhooks.deliver"
    # No other job's line carries this request id.
    assert {entry.get("job_id") for entry in found} <= {None, traced["id"]}


def test_ready_names_redis_when_it_is_down(start_stack, tmp_path):
    redis = RedisServer(tmp_path).start()
    base = start_stack(processes=("web",), REDIS_URL=redis.url)
    status, _, ready = call("GET", f"{base}/ready")
    assert status == 503 and ready["checks"]["database"] == "ok" and ready["checks"]["redis"] == "ok"
    assert (
        ready["checks"]["workers"]
        == "unavailable: no live worker consumes ai_priority, ai, default, email, exports, maintenance"
    )

    redis.stop()
    status, _, ready = call("GET", f"{base}/ready")
    assert status == 503 and ready["checks"]["redis"].startswith("unavailable: ")
    assert ready["checks"]["workers"] == "unknown: Redis is unavailable"
    assert ready["checks"]["database"] == "ok"


class Flower:
    """The Procfile's `flower` line under honcho, as `make run` starts it."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "FLOWER_PORT": str(self.port),
            "FLOWER_DB": str(tmp_path / "flower.db"),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "Flower":
        empty = self.tmp_path / "flower.env"
        empty.write_text("")
        self.log = (self.tmp_path / f"flower-{free_port()}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "--no-colour", "--env", str(empty), "flower"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: self.get("/healthcheck")[0] in (200, 401), 30, message="Flower to answer")
        return self

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=20)
        self.log.close()

    def get(self, path: str, auth: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""


def test_flower_needs_its_password_shows_every_queue_and_remembers_tasks(tmp_path):
    from tasks import job_recovery

    auth = "ops:a-long-flower-password"
    worker = celery_worker(dict(os.environ), tmp_path / "worker.log")  # consumes every queue
    flower = Flower(tmp_path, FLOWER_BASIC_AUTH=auth).start()
    try:
        assert flower.get("/api/workers")[0] == 401
        assert flower.get("/api/workers", auth="ops:wrong")[0] == 401
        wait_until(lambda: "ready." in worker.log(), 30, message="the worker")

        def seen(task_id: str) -> dict:
            return json.loads(flower.get("/api/tasks", auth=auth)[1]).get(task_id, {})

        # Flower's HTTP server answers before its event receiver runs: a task that runs in
        # between is seen half (its end, not its name). Send one until Flower sees it.
        wait_until(
            lambda: seen(job_recovery.expire_overdue.apply_async().id),
            30,
            interval=0.5,
            message="Flower's events",
        )
        task_id = job_recovery.expire_overdue.apply_async().id

        def queue_names() -> set[str]:
            status, body = flower.get("/api/queues/length", auth=auth)
            assert status == 200
            return {queue["name"] for queue in json.loads(body)["active_queues"]}

        assert queue_names() == {"ai_priority", "ai", "default", "email", "exports", "maintenance"}
        wait_until(
            lambda: seen(task_id).get("state") == "SUCCESS", 20, message="Flower to see the task succeed"
        )
    finally:
        worker.kill_all()  # nothing to finish; Flower keeps what it saw
        flower.stop()

    again = Flower(tmp_path, FLOWER_BASIC_AUTH=auth).start()  # the same FLOWER_DB
    try:
        task = json.loads(again.get("/api/tasks", auth=auth)[1])[task_id]
        assert (task["name"], task["state"]) == ("conveyor.maintenance.expire_overdue", "SUCCESS"), task
    finally:
        again.stop()


def test_flower_refuses_to_start_without_a_password_outside_development(tmp_path):
    flower = Flower(tmp_path, CONVEYOR_ENV="test", FLOWER_BASIC_AUTH="")
    empty = tmp_path / "flower.env"
    empty.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "honcho", "start", "--no-colour", "--env", str(empty), "flower"],
        cwd=ROOT,
        env=flower.env,
        capture_output=True,
        timeout=60,
    )
    output = result.stdout.decode() + result.stderr.decode()
    assert (
        "Flower cannot start: FLOWER_BASIC_AUTH must be set (user:password) when CONVEYOR_ENV=test" in output
    )
