"""The measured scenarios: submit, poll, the pipeline and its overhead, and I/O-bound jobs.
Each runs Conveyor and its baseline alternately and stores its runs in `bench.results`."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg2
from redis import Redis

from bench.client import http_call, http_json, job_body
from bench.config import (
    AI_QUEUE,
    AI_WORKER_CONCURRENCY,
    CONNECTIONS,
    IO_JOBS,
    IO_LATENCY,
    IO_LONG_LATENCY,
    STREAM_PAUSE,
    STREAM_WAIT,
)
from bench.harness import Bench, alternate
from bench.processes import PYTHON, CpuMeter, children, rss_mb


def scenario_submit(bench: Bench) -> None:
    auth = [f"Authorization: Bearer {user['token']}" for user in bench.users]
    conveyor_lines = [
        "\t".join(
            ["POST", "/api/v1/jobs", job_body(f"s{i}"), "Content-Type: application/json", auth[i % len(auth)]]
        )
        for i in range(len(auth) * 4)
    ]
    baseline_lines = [line.replace("/api/v1/jobs", "/submit", 1) for line in conveyor_lines]

    def conveyor(seconds: float) -> dict[str, Any]:
        bench.reset_jobs()
        with bench.profiling("submit-web", bench.web_workers()):
            return bench.wrk("submit-conveyor", bench.web_url, conveyor_lines, seconds)

    def baseline(seconds: float) -> dict[str, Any]:
        bench.reset_jobs()
        return bench.wrk("submit-baseline", bench.baseline_url, baseline_lines, seconds)

    runs = alternate(bench, {"conveyor": conveyor, "baseline": baseline})
    bench.results["submit"] = runs
    bench.reset_jobs()


def scenario_poll(bench: Bench) -> None:
    conveyor_200, conveyor_304, baseline_lines = _poll_lines(bench, _finished_jobs(bench))
    hello_lines = ["\t".join(["GET", "/hello", "", "Authorization: Bearer x"])]

    def runner(name: str, url: str, lines: list[str], profile: bool = False) -> Callable[[float], dict]:
        def run(seconds: float) -> dict[str, Any]:
            if profile:
                with bench.profiling(name, bench.web_workers()):
                    return bench.wrk(name, url, lines, seconds)
            return bench.wrk(name, url, lines, seconds)

        return run

    runs = alternate(
        bench,
        {
            "conveyor": runner("poll-conveyor", bench.web_url, conveyor_200, profile=True),
            "baseline": runner("poll-baseline", bench.baseline_url, baseline_lines),
            "conveyor_304": runner("poll304-conveyor", bench.web_url, conveyor_304, profile=True),
            "hello": runner("poll-hello", bench.baseline_url, hello_lines),
        },
    )
    bench.results["poll"] = runs


def _finished_jobs(bench: Bench) -> list[tuple[dict, str]]:
    """One finished job per user, as a client polls it once the result is in."""
    bench.reset_jobs()
    bench.worker_ai()
    jobs = []
    for index, user in enumerate(bench.users):
        status, job = http_json(
            "POST",
            f"{bench.web_url}/api/v1/jobs",
            json.loads(job_body(f"p{index}")),
            {"Authorization": f"Bearer {user['token']}"},
        )
        if status != 202:
            raise SystemExit(f"submit answered {status}: {job}")
        jobs.append((user, job["id"]))
    _wait_succeeded(bench, len(jobs))
    bench.stop_worker_ai()
    return jobs


def _poll_lines(bench: Bench, jobs: list[tuple[dict, str]]) -> tuple[list[str], list[str], list[str]]:
    """wrk's request lines: Conveyor's GET, its conditional GET (304), and the baseline's GET
    of the same job, copied into the baseline's table."""
    conveyor_200, conveyor_304, baseline_lines = [], [], []
    for user, job_id in jobs:
        bearer = f"Bearer {user['token']}"
        auth = f"Authorization: {bearer}"
        status, headers, job = http_call(
            "GET", f"{bench.web_url}/api/v1/jobs/{job_id}", headers={"Authorization": bearer}
        )
        if status != 200:
            raise SystemExit(f"GET /jobs/<id> answered {status}: {job}")
        etag = headers["ETag"]
        conveyor_200.append("\t".join(["GET", f"/api/v1/jobs/{job_id}", "", auth]))
        conveyor_304.append("\t".join(["GET", f"/api/v1/jobs/{job_id}", "", auth, f"If-None-Match: {etag}"]))
        bench.execute(
            "INSERT INTO bench_jobs (id, owner, tool, status, input, output) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                job_id,
                user["id"],
                job["tool"],
                job["status"],
                json.dumps(job["input"]),
                json.dumps(job["output"]),
            ),
        )
        baseline_lines.append("\t".join(["GET", f"/jobs/{job_id}", "", auth]))
    return conveyor_200, conveyor_304, baseline_lines


def _wait_succeeded(bench: Bench, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = bench.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'")[0][0]
        if done >= count:
            return
        time.sleep(0.2)
    raise SystemExit(f"only {done} of {count} set-up jobs succeeded within {timeout} s")


def scenario_overhead_and_pipeline(bench: Bench) -> None:
    options = bench.options
    bench.provider(latency=0.0)
    bench.reset_jobs()
    worker = bench.worker_ai()
    common = {
        "base_url": bench.web_url,
        "tokens": [user["token"] for user in bench.users],
        "database_url": bench.env["BASELINE_DATABASE_URL"],
        "provider_url": bench.provider_url,
    }
    if options.wants("overhead"):
        bench.results["hand_offs_us"] = hand_offs(bench)
        # The bare chain's worker runs for this scenario only: the submit scenario's
        # baseline leaves its messages in the list.
        bench.processes.start("bare_worker", [PYTHON, "-m", "bench.bare_worker"], bench.env)
        config = common | {"baseline_url": bench.baseline_url, "jobs": options.overhead_jobs}
        bench.results["overhead"] = bench.load("overhead", config | {"warmup": 10, "pause": 0.02})
        bench.processes.stop("bare_worker")
    if options.wants("stream"):
        # The provider waits before answering, so that the client follows the job's
        # events before its first token is sent (it would read it from the stream's
        # history otherwise, and be timed late).
        bench.provider(latency=STREAM_WAIT)
        config = common | {"jobs": options.stream_jobs, "warmup": 5, "pause": STREAM_PAUSE}
        bench.results["stream"] = bench.load("stream", config)
        bench.provider(latency=0.0)
    if options.wants("pipeline"):
        baseline = bench.celery_worker(
            "baseline_worker",
            app="bench.baseline_celery",
            queues="bench_noop",
            extra=["--concurrency", str(AI_WORKER_CONCURRENCY)],
        )
        conveyor_config = common | {"jobs": options.pipeline_jobs, "concurrency": CONNECTIONS, "timeout": 600}
        celery_config = {"tasks": options.pipeline_tasks, "redis_url": bench.redis_url, "timeout": 600}
        bench.reset_jobs()
        # Warm-up: connections, imports, caches.
        bench.load("pipeline-conveyor", conveyor_config | {"jobs": min(200, options.pipeline_jobs)})
        bench.load("pipeline-celery", celery_config | {"tasks": min(500, options.pipeline_tasks)})
        runs: dict[str, list] = {"conveyor": [], "baseline": []}
        for _ in range(options.pipeline_runs):
            bench.reset_jobs()
            pool = children(worker.pid)
            meter = CpuMeter(
                {
                    "web": bench.web_workers(),
                    "worker": [worker.pid, *pool],
                    "worker_main": [worker.pid],
                    "provider": [bench.processes.started["provider"].pid],
                }
            )
            with bench.profiling("pipeline-worker", [worker.pid, *pool]):
                result = bench.load("pipeline-conveyor", conveyor_config)
                result |= meter.per(result["jobs"], "job")  # before py-spy ends: not its CPU
            runs["conveyor"].append(result)
            meter = CpuMeter({"worker": [baseline.pid, *children(baseline.pid)]})
            result = bench.load("pipeline-celery", celery_config)
            result |= meter.per(result["tasks"], "task")
            runs["baseline"].append(result)
        bench.results["pipeline"] = runs
        bench.processes.stop("baseline_worker")
    bench.stop_worker_ai()


def hand_offs(bench: Bench, *, idle: float = 0.02) -> dict[str, dict[str, float]]:
    """What one round trip to Redis (PING) and to Postgres (SELECT 1) takes from this
    process, back to back and after `idle` seconds of nothing: median µs. One job at a
    time, the overhead's path is a chain of such hand-offs to processes that had gone
    idle, and on a virtual machine a wake-up can cost more than the work."""
    redis = Redis.from_url(bench.redis_url)
    database = psycopg2.connect(bench.env["BASELINE_DATABASE_URL"])
    database.autocommit = True
    cursor = database.cursor()
    calls = {"redis_ping": redis.ping, "postgres_select_1": lambda: cursor.execute("SELECT 1")}
    measured = {}
    try:
        for name, call in calls.items():
            for _ in range(20):  # connected, warm
                call()
            measured[name] = {
                "back_to_back": _median_us(call, 200, 0.0),
                f"after_{idle * 1000:g}ms_idle": _median_us(call, 100, idle),
            }
    finally:
        database.close()
        redis.close()
    return measured


def _median_us(call: Callable[[], object], count: int, pause: float) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
        if pause:
            time.sleep(pause)
    return round(statistics.median(times), 1)


def _run_tasks(bench: Bench, worker: int, config: dict[str, Any], latency: float, *, call: bool) -> dict:
    """One run of the I/O baselines' tasks (bench.load's io-celery) with the worker's CPU a
    task, and the provider's when they call it (answering after `latency`); profiled with
    --profile, as the jobs are."""
    groups = {"worker": [worker]}
    if call:
        groups["provider"] = [bench.processes.started["provider"].pid]
    meter = CpuMeter(groups)
    worker_name = "conveyor" if config.get("conveyor") else "celery"
    with bench.profiling(f"io-{worker_name}{'-call' if call else ''}", [worker]):
        result = bench.load("io-celery", config | {"latency": latency, "call": call})
    return result | meter.per(IO_JOBS, "task")


def scenario_io(bench: Bench) -> None:
    options = bench.options
    hostname = "worker_io@bench"
    worker = bench.idle_gevent_worker("worker_io", app="bench.conveyor_celery")
    idle_rss = rss_mb(worker.pid)
    config = {
        "base_url": bench.web_url,
        "tokens": [user["token"] for user in bench.users],
        "database_url": bench.env["BASELINE_DATABASE_URL"],
        "concurrency": CONNECTIONS,
        "jobs": IO_JOBS,
        "queue": AI_QUEUE,
        "worker": hostname,
        "timeout": 300,
    }

    def run(latency: float) -> dict[str, Any]:
        bench.reset_jobs()
        bench.provider(latency=latency)
        # Where the machine's cores went: the worker, and Postgres's and the provider's share.
        meter = CpuMeter({"worker": [worker.pid], "provider": [bench.processes.started["provider"].pid]})
        with bench.profiling("io-worker", [worker.pid]):
            result = bench.load("io", config)
        result |= meter.per(IO_JOBS, "job")
        stats = bench.provider_stats()
        return result | {
            "peak_in_flight": stats["peak_in_flight"],
            "provider_requests": stats["requests"],
            "provider_connections": stats["connections"],  # ~requests if the worker pools none
        }

    bench.results["io"] = [run(IO_LATENCY) for _ in range(options.io_runs)]
    memory = bench.results.setdefault("memory", {})
    memory["gevent AI worker, after the 1 s calls"] = [rss_mb(worker.pid)]
    # Calls of seconds, as AI calls are: how many one process holds once its starts are
    # not racing its first calls' ends (one run: the figure is the pool's size or not).
    bench.results["io_long"] = [run(IO_LONG_LATENCY)]
    memory["gevent AI worker"] = [rss_mb(worker.pid)]  # having held the most calls at once
    bench.results["io_worker_rss_mb"] = {"idle, before the runs": idle_rss, "after": rss_mb(worker.pid)}
    # The same process making a job's provider call and nothing else (no take, events or
    # outcome): what Conveyor's delivery and the call alone reach, before a job's own work.
    bench.provider(latency=IO_LATENCY)
    call_config = config | {"redis_url": bench.redis_url, "tasks": IO_JOBS, "conveyor": True}
    bench.results["io_call_conveyor"] = [
        _run_tasks(bench, worker.pid, call_config, IO_LATENCY, call=True) for _ in range(options.io_runs)
    ]
    bench.processes.stop("worker_io")
    bench.provider(latency=0.0)
    # The same pool with raw Celery tasks that only wait: what Celery itself reaches.
    baseline = bench.idle_gevent_worker("baseline_io", app="bench.baseline_celery")
    celery_config = {
        "redis_url": bench.redis_url,
        "tasks": IO_JOBS,
        "worker": "baseline_io@bench",
        "timeout": 300,
    }

    def run_celery(latency: float, *, call: bool = False) -> dict[str, Any]:
        return _run_tasks(bench, baseline.pid, celery_config, latency, call=call)

    bench.results["io_celery"] = [run_celery(IO_LATENCY) for _ in range(options.io_runs)]
    bench.results["io_long_celery"] = [run_celery(IO_LONG_LATENCY)]
    # Between the two: raw Celery tasks making a job's provider call and nothing else.
    bench.provider(latency=IO_LATENCY)
    bench.results["io_call_celery"] = [run_celery(IO_LATENCY, call=True) for _ in range(options.io_runs)]
    bench.provider(latency=0.0)
    bench.processes.stop("baseline_io")
