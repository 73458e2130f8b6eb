"""Instructions per request and per job, counted by valgrind: repeatable, whatever else
the machine is doing (seconds are not, on a shared machine). `make bench-instructions`.

Each case runs in a process of its own under `valgrind --tool=callgrind
--instr-atstart=no`. The process makes a throwaway database and Redis db as the bench
does (production settings: JSON logs at INFO, an access line per request, metrics in
multiprocess mode), loads the app as its server would (the web under gevent with
psycopg2 cooperative), warms up, freezes the start-up heap out of the GC (as
gunicorn.conf.py and the Celery worker do), and counts only the measured loop.

- health, poll, 304, submit: `GET /api/v1/health`, `GET /jobs/<id>` (200, and 304 with
  `If-None-Match`), `POST /jobs`, through Flask's test client (no HTTP server: its own
  work is in every case alike).
- job: the generation task's body (`run_generation`) for one job against
  bench/fake_provider.py (instant), as a prefork pool process runs it, minus Celery's
  own work around a task. job-gevent: the same under gevent with psycopg2 made
  cooperative, as the I/O scenario's `-P gevent` worker runs it (one job at a time).
  job-stream: `job` with an answer streamed as OpenAI streams one, a token a chunk
  (STREAM_TOKENS of them, where `job`'s answer is a dozen pieces): what a streamed
  token costs is (job-stream - job) / STREAM_TOKENS. Streamed text goes out as one
  `delta` event per STREAM_DELTA_INTERVAL, so how many events a job sends depends on
  how long it streams (under valgrind, on how fast valgrind runs): the case runs with
  the window longer than any job, the first piece going at once and the rest with
  `done`, as `job`'s does; what each further event costs is the `delta` case.
- delta: one `delta` event published (`job_stream.publish`, an XADD): a streamed
  answer sends one per STREAM_DELTA_INTERVAL of streaming.
- bare, bare-stream: the baseline of a job's provider call, the same two answers from
  the same fake provider read with httpx2 (the HTTP client the SDK uses) and a JSON
  decoder per chunk, nothing kept: (bare-stream - bare) / STREAM_TOKENS is what the
  wire and the decoding alone cost a token.

It counts this process's instructions only: not the kernel's work for its system
calls, nor Postgres's or Redis's. A change that saves a round trip shows in
`make bench`, not here.

    python -m bench.instructions                   # every case, 200 requests or jobs each
    python -m bench.instructions poll 304 --count 100
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CASES = (
    "health",
    "poll",
    "304",
    "submit",
    "job",
    "job-gevent",
    "job-stream",
    "delta",
    "call",
    "bare",
    "bare-stream",
    "bare-urllib3",
    "bare-urllib3-stream",
)
STREAM_TOKENS = 500
# The others run under gevent.
PREFORK = ("job", "job-stream", "delta", "call", "bare", "bare-stream", "bare-urllib3", "bare-urllib3-stream")
# job-stream is 13x a job's instructions, ~1 s a job under valgrind: a tenth of the count
# after the same warm-up (the count is exact; more jobs only repeat the same work).
SCALE = {"job-stream": 10, "bare-stream": 10, "bare-urllib3-stream": 10}
WARM_UP = 30
COLLECTED = re.compile(r"Collected : ([\d,]+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--count", type=int, default=200, help="requests or jobs counted per case")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case {', '.join(sorted(unknown))}; choose from {', '.join(CASES)}")
    if args.child:
        return _child(args.cases[0], args.count)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    results = {}
    for case in args.cases or CASES:
        per_op = _count(case, max(10, args.count // SCALE.get(case, 1)))
        results[case] = round(per_op / 1e6, 3)
        unit = {"job": "job", "bare": "call", "delta": "event"}.get(case.split("-")[0], "request")
        print(f"{case:<10} {results[case]:7.3f} M instructions per {unit}")
    if "job" in results and "job-stream" in results:
        results["per-streamed-token"] = round((results["job-stream"] - results["job"]) / STREAM_TOKENS, 4)
        print(f"{'a token':<10} {results['per-streamed-token']:7.4f} M instructions per streamed token")
    baselines = (("bare", "the baseline"), ("bare-urllib3", "through Conveyor's transport"))
    for base, label in baselines:
        if base in results and f"{base}-stream" in results:
            per_token = round((results[f"{base}-stream"] - results[base]) / STREAM_TOKENS, 4)
            results[f"{base}-per-token"] = per_token
            print(f"{base + ' token':<10} {per_token:7.4f} M instructions per token, {label}")
            if "per-streamed-token" in results:
                ratio = results["per-streamed-token"] / per_token
                print(f"{'ratio':<10} {ratio:7.2f} x that baseline per streamed token")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"instructions-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps({"count": args.count, "millions_per_op": results}, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


def _count(case: str, count: int) -> float:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        case,
        "--count",
        str(count),
    ]
    env = os.environ | {"PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"the {case} case failed (exit {done.returncode})")
    return int(found.group(1).replace(",", "")) / count


def _callgrind(state: str) -> None:
    command = ["callgrind_control", "-i", state, str(os.getpid())]
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)


def _child(case: str, count: int) -> None:
    job = case.startswith("job")
    if case not in PREFORK:  # as gunicorn's gevent workers run the web, and `-P gevent` an AI worker
        from gevent import monkey

        monkey.patch_all()
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
    from bench.config import Options
    from bench.harness import Bench, admin, sql

    bench = Bench(Options())
    os.environ.update(bench.env_for("worker" if job else "web"))
    if case == "job-stream":  # a fixed number of delta events a job: see the docstring
        os.environ["STREAM_DELTA_INTERVAL"] = "3600"
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(bench.db_name)))
    try:
        subprocess.run(
            [str(Path(sys.executable).parent / "alembic"), "upgrade", "head"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        total = WARM_UP + count
        tokens = STREAM_TOKENS if case.endswith("-stream") else None
        if case.startswith("bare"):
            operation = _bare_operation(bench, tokens, conveyors_transport=case.startswith("bare-urllib3"))
        elif case == "delta":
            operation = _delta_operation()
        elif case == "call":
            operation = _call_operation(bench)
        elif job:
            operation = _job_operation(bench, total, tokens)
        else:
            operation = _web_operation(case)
        for _ in range(WARM_UP):
            operation()
        import gc

        gc.collect()
        gc.freeze()
        _callgrind("on")
        for _ in range(count):
            operation()
        _callgrind("off")
    finally:
        bench.tear_down()


def _web_operation(case: str):
    from bench.conveyor_wsgi import app

    client = app.test_client()
    answer = client.post(
        "/api/v1/auth/register",
        json={"email": "count@example.com", "password": "bench password 1234", "name": "C"},
    )
    _set_bench_plan()
    headers = {"Authorization": f"Bearer {answer.json['access_token']}"}
    body = {"tool": "text", "input": {"prompt": "Write a haiku about queues."}}
    job = client.post("/api/v1/jobs", json=body, headers=headers).json["id"]
    etag = client.get(f"/api/v1/jobs/{job}", headers=headers).headers["ETag"]
    request, expected = {
        "health": (lambda: client.get("/api/v1/health"), 200),
        "poll": (lambda: client.get(f"/api/v1/jobs/{job}", headers=headers), 200),
        "304": (lambda: client.get(f"/api/v1/jobs/{job}", headers={**headers, "If-None-Match": etag}), 304),
        "submit": (lambda: client.post("/api/v1/jobs", json=body, headers=headers), 202),
    }[case]

    def operation() -> None:
        status = request().status_code
        if status != expected:
            raise SystemExit(f"{case} answered {status}, not {expected}")

    return operation


def _job_operation(bench, total: int, tokens: int | None = None):
    import datetime as dt

    from bench import plan
    from bench.processes import wait_http

    plan.install()
    provider = _start_provider(bench)
    import workers.celery_app  # noqa: F401 - a worker's signals and logging
    from db.repositories import jobs, users
    from db.session import remove_session, session_scope
    from settings import get_settings
    from tasks.generation import run_generation
    from workers import logs

    logs.configure(get_settings())
    with session_scope() as session:
        user_id = users.create(
            session,
            email="count@example.com",
            password_hash="not-a-hash",  # noqa: S106 - never logged in
            name="C",
            profile={},
        ).id
    _set_bench_plan()
    wait_http(f"{bench.provider_url}/stats", provider)
    made = []  # made beforehand: the row is the submit's work, not the job's
    answer = f" [[tokens:{tokens}]]" if tokens else ""  # bench/fake_provider.py's marker
    for number in range(total):
        with session_scope() as session:
            made.append(
                jobs.create(
                    session,
                    user_id=user_id,
                    tool="text",
                    input={"prompt": f"bench-count-{number} Write a haiku.{answer}"},
                    model="gpt-4o-mini",
                    queue="ai_priority",
                    expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                    dispatched=True,
                ).id
            )
    waiting = iter(made)

    def operation() -> None:
        status = run_generation.run(str(next(waiting)))
        remove_session()  # as the worker does after each task (task_postrun)
        if status != "succeeded":
            raise SystemExit(f"the job ended {status}")

    return operation


def _bare_operation(bench, tokens: int | None, *, conveyors_transport: bool = False):
    """The baseline of a job's provider call: the same request to the same fake provider,
    its stream read with the HTTP client the SDK uses (httpx2, its defaults; with
    `conveyors_transport`, over workers/providers/pooling.py's urllib3 transport, as
    Conveyor's provider sends), each `data:` line parsed with the standard library's
    JSON decoder, nothing kept."""
    import json as json_module

    import httpx2

    from bench.processes import wait_http

    provider = _start_provider(bench)
    wait_http(f"{bench.provider_url}/stats", provider)
    if conveyors_transport:
        from workers.providers.pooling import PoolingTransport

        client = httpx2.Client(timeout=60, transport=PoolingTransport())
    else:
        client = httpx2.Client(timeout=60)
    url = f"{bench.provider_url}/v1/chat/completions"
    answer = f" [[tokens:{tokens}]]" if tokens else ""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"bench-count Write a haiku.{answer}"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    loads = json_module.loads

    def operation() -> None:
        with client.stream("POST", url, json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    loads(line[6:])

    return operation


def _call_operation(bench):
    """A job's provider call alone, as a job makes it (`bench.provider_call.job_call`):
    between `bare-urllib3` (the same HTTP client and transport, no SDK) and `job`."""
    from bench.processes import wait_http
    from bench.provider_call import job_call

    provider = _start_provider(bench)
    wait_http(f"{bench.provider_url}/stats", provider)
    conveyors, request = job_call()

    def operation() -> None:
        if not conveyors.complete(request).text:
            raise SystemExit("the call answered no text")

    return operation


def _start_provider(bench):
    """The fake provider, for the cases that call it (stopped with the bench's processes)."""
    from bench.processes import PYTHON

    return bench.processes.start(
        "provider", [PYTHON, "-m", "bench.fake_provider", "--port", str(bench.provider_port)], bench.env
    )


def _delta_operation():
    import uuid

    from db.redis_client import get_redis
    from workers import job_stream

    redis, job_id = get_redis(), uuid.uuid4()

    def operation() -> None:
        if job_stream.publish(redis, job_id, job_stream.DELTA, {"text": " w1 w2 w3"}, set_ttl=False) is None:
            raise SystemExit("the delta event was not published")

    return operation


def _set_bench_plan() -> None:
    from sqlalchemy import text

    from bench.plan import PLAN
    from db.session import session_scope

    with session_scope() as session:
        session.execute(text("UPDATE users SET plan = :plan, email_verified_at = now()"), {"plan": PLAN})


if __name__ == "__main__":
    main()
