"""The benchmark's Python load generator, run by bench/run.py as a process of its own
(so that its CPU is not the servers'): `python -m bench.load SCENARIO --config FILE`.

Scenarios that wrk cannot drive, because they follow jobs to their end: pipeline
(Conveyor and raw Celery), I/O concurrency, overhead, and the first streamed token.
Each prints one JSON object.
HTTP goes over a minimal keep-alive HTTP/1.1 client on asyncio streams: cheaper per
request than any client library, which matters on a two-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2

from bench.client import Connection


def prompt(tag: str) -> dict[str, Any]:
    return {"tool": "text", "input": {"prompt": f"{tag} Write a haiku about queues."}}


async def submit_many(base_url: str, tokens: list[str], count: int, concurrency: int, run: str) -> list[str]:
    """POST /jobs `count` times over `concurrency` connections, users in turn; the ids."""
    ids: list[str] = []
    failures: dict[int, int] = {}
    numbers = iter(range(count))

    async def client() -> None:
        connection = Connection(base_url)
        try:
            for number in numbers:
                token = tokens[number % len(tokens)]
                status, _, payload = await connection.request(
                    "POST",
                    "/api/v1/jobs",
                    body=prompt(f"bench-{run}-{number}"),
                    headers={"Authorization": f"Bearer {token}"},
                )
                if status == 202:
                    ids.append(json.loads(payload)["id"])
                else:
                    failures[status] = failures.get(status, 0) + 1
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    if failures:
        raise SystemExit(f"submits failed: {failures}")
    return ids


def wait_finished(database_url: str, count: int, timeout: float, since: float = 0.0) -> dict[str, Any]:
    """Poll the jobs table until `count` jobs are finished; their outcome and timing
    (`first_start`: the first one started at `since` or later)."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    deadline = time.monotonic() + timeout
    try:
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL")
                finished = cursor.fetchone()[0]
                if finished >= count or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            cursor.execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), "
                "count(*) FILTER (WHERE finished_at IS NOT NULL), "
                "extract(epoch FROM min(started_at) FILTER (WHERE started_at >= to_timestamp(%s))), "
                "extract(epoch FROM max(finished_at)) FROM jobs",
                (since,),
            )
            succeeded, finished, first_start, last_finish = cursor.fetchone()
    finally:
        connection.close()
    return {
        "succeeded": succeeded,
        "finished": finished,
        "first_start": float(first_start) if first_start is not None else None,
        "last_finish": float(last_finish) if last_finish is not None else None,
        "timed_out": finished < count,
    }


def pipeline_conveyor(config: dict[str, Any]) -> dict[str, Any]:
    count = config["jobs"]
    started = time.time()
    asyncio.run(
        submit_many(config["base_url"], config["tokens"], count, config["concurrency"], config["run"])
    )
    submitted = time.time()
    done = wait_finished(config["database_url"], count, timeout=config["timeout"])
    elapsed = (done["last_finish"] or time.time()) - started
    return done | {
        "jobs": count,
        "submit_s": submitted - started,
        "elapsed_s": elapsed,
        "jobs_per_s": done["succeeded"] / elapsed,
    }


def pipeline_celery(config: dict[str, Any]) -> dict[str, Any]:
    from redis import Redis

    from bench.baseline_celery import DONE_KEY, noop

    redis = Redis.from_url(config["redis_url"])
    redis.delete(DONE_KEY)
    count = config["tasks"]
    started = time.time()
    for _ in range(count):
        noop.apply_async()
    submitted = time.time()
    deadline = time.monotonic() + config["timeout"]
    done = 0
    while time.monotonic() < deadline:
        done = int(redis.get(DONE_KEY) or 0)
        if done >= count:
            break
        time.sleep(0.005)
    elapsed = time.time() - started
    return {
        "tasks": count,
        "done": done,
        "submit_s": submitted - started,
        "elapsed_s": elapsed,
        "tasks_per_s": done / elapsed,
        "timed_out": done < count,
    }


def io_concurrency(config: dict[str, Any]) -> dict[str, Any]:
    """Submit the jobs while the gevent worker consumes nothing, then let it at them."""
    from workers.celery_app import app as celery_app

    count = config["jobs"]
    asyncio.run(
        submit_many(config["base_url"], config["tokens"], count, config["concurrency"], config["run"])
    )
    started = time.time()
    replies = celery_app.control.add_consumer(
        config["queue"], destination=[config["worker"]], reply=True, timeout=10
    )
    if not replies:
        raise SystemExit(f"the worker {config['worker']} did not answer add_consumer")
    done = wait_finished(config["database_url"], count, timeout=config["timeout"], since=started)
    celery_app.control.cancel_consumer(
        config["queue"], destination=[config["worker"]], reply=True, timeout=10
    )
    return done | {"jobs": count, **_io_times(started, done["first_start"], done["last_finish"])}


def _io_times(commanded: float, first_start: float | None, last_end: float | None) -> dict[str, float]:
    """The calls' time, from the first one started after the add_consumer command to the
    last one's end. Not from the command itself: both workers logged "Started consuming"
    up to seconds after it was sent, a delay that moved from run to run and is neither
    worker's own work (a worker consumes its queues from the start in production).
    Not from a call started before it either: the read a worker had waiting on the queue
    when the last run's cancel_consumer came can still take the next run's first message.
    `control_delay_s` reports the delay, and `since_command_s` the time the bench
    reported before 2026-12-07's fifth round of issue 28."""
    first_start = first_start or commanded
    last_end = last_end or time.time()
    return {
        "elapsed_s": last_end - first_start,
        "control_delay_s": first_start - commanded,
        "since_command_s": last_end - commanded,
    }


def io_celery(config: dict[str, Any]) -> dict[str, Any]:
    """The I/O baselines: Celery tasks that each wait `latency` or, with `call`, make a
    job's provider call (the bench's provider waiting `latency`), queued while the gevent
    worker consumes nothing, then let at them; peak overlap from their spans. Raw
    Celery's worker runs them, or with `conveyor` Conveyor's (the call only, on the
    queue its jobs use). A call run first makes one call, not counted, so that no run
    pays for loading the SDK or for the provider's first connection."""
    from redis import Redis

    from bench.provider_call import SPANS_KEY

    redis = Redis.from_url(config["redis_url"])
    if config.get("conveyor"):
        from workers.celery_app import app

        queue = config["queue"]

        def send() -> None:
            app.send_task("bench.conveyor_call", queue=queue)

    else:
        from bench.baseline_celery import SLEEP_QUEUE as queue
        from bench.baseline_celery import app, call, sleep

        def send() -> None:
            if config["call"]:
                call.apply_async(queue=queue)
            else:
                sleep.apply_async(args=[config["latency"]], queue=queue)

    def let_at(count: int, timeout: float) -> float:
        started = time.time()
        if not app.control.add_consumer(queue, destination=[config["worker"]], reply=True, timeout=10):
            raise SystemExit(f"the worker {config['worker']} did not answer add_consumer")
        deadline = time.monotonic() + timeout
        while redis.llen(SPANS_KEY) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        app.control.cancel_consumer(queue, destination=[config["worker"]], reply=True, timeout=10)
        return started

    if config["call"]:
        redis.delete(SPANS_KEY)
        send()
        let_at(1, 30)
    redis.delete(SPANS_KEY)
    count = config["tasks"]
    for _ in range(count):
        send()
    started = let_at(count, config["timeout"])
    spans = [tuple(map(float, span.split())) for span in redis.lrange(SPANS_KEY, 0, -1)]
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    first_start = min((start for start, _ in spans if start >= started), default=None)
    last_end = max((end for _, end in spans), default=None)
    return {
        "tasks": count,
        "done": len(spans),
        "peak_in_flight": peak,
        **_io_times(started, first_start, last_end),
        "timed_out": len(spans) < count,
    }


async def _follow(
    connection: Connection, submit: str, poll: str, body: Any, headers: dict[str, str]
) -> dict[str, Any]:
    """Submit one job and long-poll it until it is no longer queued or running: the
    job as last seen, and when it was sent, accepted and seen (seconds)."""
    started = time.perf_counter()
    sent_at = time.time()
    status, _, payload = await connection.request("POST", submit, body=body, headers=headers)
    if status != 202:
        raise SystemExit(f"{submit} answered {status}: {payload[:200]!r}")
    accepted_at = time.time()
    job = json.loads(payload)
    etag = None
    while job["status"] in ("queued", "running"):
        poll_headers = headers | ({"If-None-Match": etag} if etag else {})
        status, response_headers, payload = await connection.request(
            "GET", poll.format(id=job["id"]), headers=poll_headers
        )
        if status == 200:
            job = json.loads(payload)
            etag = response_headers.get("etag")
        elif status != 304:
            raise SystemExit(f"poll answered {status}: {payload[:200]!r}")
    return {
        "job": job,
        "seen_s": time.perf_counter() - started,
        "sent_at": sent_at,
        "accepted_at": accepted_at,
        "seen_at": time.time(),
    }


async def _overhead(config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[float]]:
    """One job at a time through Conveyor, each followed by one through the bare chain
    (bench/baseline_app.py's submit and long-poll, bench/bare_worker.py) when there is
    one, so both see the machine at the same moments: Conveyor's samples, and the
    bare chain's times (seconds)."""
    connection = Connection(config["base_url"])
    bare = Connection(config["baseline_url"]) if config.get("baseline_url") else None
    headers = {"Authorization": f"Bearer {config['tokens'][0]}"}
    samples, bare_times = [], []
    try:
        for number in range(config["warmup"] + config["jobs"]):
            tag = f"bench-{config['run']}-{number}"
            seen = await _follow(
                connection, "/api/v1/jobs", "/api/v1/jobs/{id}?wait=30", prompt(tag), headers
            )
            job = seen.pop("job")
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job['id']} ended {job['status']}: {job.get('error')}")
            if number >= config["warmup"]:
                samples.append({"tag": tag, "id": job["id"]} | seen)
            await asyncio.sleep(config["pause"])
            if bare is not None:
                seen = await _follow(bare, "/submit", "/jobs/{id}/wait", prompt(tag), headers)
                if number >= config["warmup"]:
                    bare_times.append(seen["seen_s"])
                await asyncio.sleep(config["pause"])
    finally:
        connection.close()
        if bare is not None:
            bare.close()
    return samples, bare_times


def _segments(database_url: str, samples: list[dict[str, Any]], timings: dict[str, float]) -> dict:
    """Where each job's time went, median ms per segment, from the client's clock and
    the row's timestamps (each is its transaction's start, on the same machine):
    accept = the POST's round trip; deliver = 202 → the worker's take;
    run = take → the outcome's transaction, minus the provider; notify = that → seen."""
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id::text, extract(epoch FROM started_at), extract(epoch FROM finished_at) "
                "FROM jobs WHERE id = ANY(%s::uuid[])",
                ([sample["id"] for sample in samples],),
            )
            rows = {row[0]: (float(row[1]), float(row[2])) for row in cursor.fetchall()}
    finally:
        connection.close()
    parts: dict[str, list[float]] = {"accept": [], "deliver": [], "run": [], "notify": []}
    for sample in samples:
        started_at, finished_at = rows[sample["id"]]
        parts["accept"].append(sample["accepted_at"] - sample["sent_at"])
        parts["deliver"].append(started_at - sample["accepted_at"])
        parts["run"].append(finished_at - started_at - timings.get(sample["tag"], 0.0))
        parts["notify"].append(sample["seen_at"] - finished_at)
    return {name: round(statistics.median(values) * 1000, 2) for name, values in parts.items()}


def overhead(config: dict[str, Any]) -> dict[str, Any]:
    samples, bare_times = asyncio.run(_overhead(config))
    stats = _fake_stats(config["provider_url"])
    values = []
    for sample in samples:
        provider = stats["timings"].get(sample["tag"], 0.0)
        values.append((sample["seen_s"] - provider) * 1000)
    result = {
        "segments_ms_median": _segments(config["database_url"], samples, stats["timings"]),
        "jobs": len(values),
        **_spread(values),
        "provider_ms_median": statistics.median(stats["timings"].get(s["tag"], 0.0) for s in samples) * 1000,
    }
    if bare_times:
        result["bare_chain"] = {"jobs": len(bare_times), **_spread([t * 1000 for t in bare_times])}
    return result


async def _first_delta(base_url: str, path: str, headers: dict[str, str]) -> float | None:
    """Follow a job's event stream (GET …/events) to its `done` event; when its first
    `delta` event arrived (wall-clock time), or None if it had none."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    first = None
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"{path} answered {head[:60]!r}")
        text = ""
        while True:  # a chunked body: each chunk as it comes
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            text += (await reader.readexactly(size + 2))[:-2].decode()
            if first is None and "event: delta" in text:
                first = time.time()
            if size == 0 or "event: done" in text:
                return first
    finally:
        writer.close()


async def _stream(config: dict[str, Any]) -> list[dict[str, Any]]:
    """One job at a time, each followed on its event stream from right after its submit."""
    connection = Connection(config["base_url"])
    headers = {"Authorization": f"Bearer {config['tokens'][0]}"}
    samples = []
    try:
        for number in range(config["warmup"] + config["jobs"]):
            tag = f"bench-{config['run']}-{number}"
            body = {
                "tool": "text",
                "input": {"prompt": f"{tag} Write a haiku. [[first-token:{config['pause']}]]"},
            }
            status, _, payload = await connection.request("POST", "/api/v1/jobs", body=body, headers=headers)
            if status != 202:
                raise SystemExit(f"POST /jobs answered {status}: {payload[:200]!r}")
            job_id = json.loads(payload)["id"]
            arrived = await _first_delta(config["base_url"], f"/api/v1/jobs/{job_id}/events", headers)
            if number >= config["warmup"]:
                samples.append({"tag": tag, "arrived": arrived})
    finally:
        connection.close()
    return samples


def stream(config: dict[str, Any]) -> dict[str, Any]:
    """The first streamed token's way from the provider to an SSE client: when the fake
    provider sent it to when the client read it in its job's first `delta` event."""
    samples = asyncio.run(_stream(config))
    sent = _fake_stats(config["provider_url"])["first_sent"]
    values = [(s["arrived"] - sent[s["tag"]]) * 1000 for s in samples if s["arrived"] and s["tag"] in sent]
    if not values:
        raise SystemExit("no job's first token reached its event stream")
    return {"jobs": len(samples), "timed": len(values), **_spread(values)}


def _spread(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies in ms."""
    values = sorted(values)
    return {
        "p50_ms": statistics.median(values),
        "p99_ms": values[min(len(values) - 1, round(0.99 * (len(values) - 1)))],
        "max_ms": values[-1],
    }


def _fake_stats(provider_url: str) -> dict[str, Any]:
    from urllib.request import urlopen

    with urlopen(f"{provider_url}/stats", timeout=10) as response:  # noqa: S310 - loopback only
        return json.load(response)


async def _replay(config: dict[str, Any]) -> dict[str, Any]:
    requests = []
    for line in config["lines"]:
        method, path, body, *headers = line.split("\t")
        parsed = dict(header.split(": ", 1) for header in headers)
        requests.append((method, path, json.loads(body) if body else None, parsed))
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    started = time.perf_counter()
    deadline = started + config["seconds"]

    async def client(offset: int) -> None:
        connection = Connection(config["base_url"])
        index = offset
        try:
            while time.perf_counter() < deadline:
                method, path, body, headers = requests[index % len(requests)]
                index += 1
                sent = time.perf_counter()
                try:
                    status, _, _ = await connection.request(method, path, body=body, headers=headers)
                except (OSError, asyncio.IncompleteReadError):
                    errors["read"] += 1
                    connection.close()
                    continue
                latencies.append((time.perf_counter() - sent) * 1e6)
                if status >= 400:
                    errors["status"] += 1
        finally:
            connection.close()

    await asyncio.gather(*(client(i * 7) for i in range(config["connections"])))
    duration = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> int:
        return int(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]) if latencies else 0

    return {
        "requests": len(latencies),
        "duration_us": int(duration * 1e6),
        "errors": errors,
        "latency_us": {
            "p50": percentile(50),
            "p90": percentile(90),
            "p99": percentile(99),
            "max": int(latencies[-1]) if latencies else 0,
            "mean": statistics.fmean(latencies) if latencies else 0.0,
        },
        "client": "bench.load replay (wrk was not available)",
    }


def replay(config: dict[str, Any]) -> dict[str, Any]:
    """wrk's job in Python, for machines without wrk: the same lines, the same JSON."""
    return asyncio.run(_replay(config))


SCENARIOS = {
    "replay": replay,
    "pipeline-conveyor": pipeline_conveyor,
    "pipeline-celery": pipeline_celery,
    "io": io_concurrency,
    "io-celery": io_celery,
    "overhead": overhead,
    "stream": stream,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--config", required=True, help="a JSON file of the scenario's parameters")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    config.setdefault("run", uuid.uuid4().hex[:8])
    print(json.dumps(SCENARIOS[args.scenario](config)), flush=True)


if __name__ == "__main__":
    main()
