"""`make bench`: Conveyor against bare baselines, measured in the same run (issue 7).

Starts everything on loopback (a database and a Redis db of its own, dropped and
emptied at the end, like tests/conftest.py does), drives it from other processes
(wrk for the HTTP scenarios, bench/load.py for the ones that follow jobs to their
end), prints a table and writes it as JSON to bench/results/.

    python -m bench.run                  # the full run
    python -m bench.run --quick          # one short run of each, to check the set-up
    python -m bench.run --only submit,poll --profile var/bench-profiles
    python -m bench.run --max-load 1.5   # first wait (up to 20 min) for a quiet machine
    python -m bench.run --serve          # set up (worker_ai too), print the URLs and a token, wait

Conveyor and the baselines run alternately, run by run, so that whatever else the
machine is doing falls on both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench.config import (
    ADMIN_URL,
    AI_WORKER_CONCURRENCY,
    CONNECTIONS,
    IO_CONCURRENCY,
    REDIS_BASE,
    RESULTS,
    USERS,
    WEB_CONNECTIONS,
    WEB_WORKERS,
    Options,
)
from bench.harness import Bench, bench_plan
from bench.processes import ROOT, ensure_wrk, load_average, machine, rss_mb, wait_for_quiet
from bench.report import Row, build_rows, render, render_cpu
from bench.scenarios import scenario_io, scenario_overhead_and_pipeline, scenario_poll, scenario_submit


def serve(bench: Bench) -> None:
    bench.worker_ai()  # so that submitted jobs run (celery_worker waits for its ping)
    print(f"web {bench.web_url}/api/v1, baseline {bench.baseline_url}, provider {bench.provider_url}")
    print(f"database {bench.env['BASELINE_DATABASE_URL']}, redis {bench.redis_url}")
    print(f"TOKEN={bench.users[0]['token']}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # tear down on either
    with suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Benchmark Conveyor against bare baselines (issue 7).")
    parser.add_argument("--quick", action="store_true", help="one short run of each: checks the set-up")
    parser.add_argument("--runs", type=int, help="measured runs of each HTTP scenario (default 5)")
    parser.add_argument("--duration", type=float, help="seconds a measured HTTP run lasts (default 10)")
    parser.add_argument(
        "--only", default="", help="comma-separated: submit, poll, pipeline, overhead, stream, io"
    )
    parser.add_argument(
        "--serve", action="store_true", help="set up, print the URLs and a token, wait for Ctrl-C"
    )
    parser.add_argument("--profile", type=Path, help="record py-spy profiles (collapsed stacks) here")
    parser.add_argument(
        "--max-load", type=float, default=0.0, help="first wait for a 1-minute load below this"
    )
    args = parser.parse_args(argv)
    options = Options()
    if args.quick:
        options = Options(
            runs=1,
            duration=3,
            warmup=1,
            pipeline_runs=1,
            pipeline_jobs=300,
            pipeline_tasks=1000,
            io_runs=1,
            overhead_jobs=40,
            stream_jobs=30,
        )
    if args.runs:
        options.runs = args.runs
    if args.duration:
        options.duration = args.duration
    options.only = {name.strip() for name in args.only.split(",") if name.strip()}
    options.profile = args.profile
    options.max_load = args.max_load
    options.serve = args.serve
    return options


SCENARIOS = (
    ("overhead", scenario_overhead_and_pipeline),
    ("poll", scenario_poll),
    ("submit", scenario_submit),
    ("io", scenario_io),
)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    ensure_wrk()
    from scripts.preflight import problems

    found = problems(ADMIN_URL, f"{REDIS_BASE}/0")
    if found:
        print("\n".join(f"error: {problem}" for problem in found), file=sys.stderr)
        return 3
    if options.max_load:
        wait_for_quiet(options.max_load)
    bench = Bench(options)
    os.environ.update(bench.env)  # for the Celery apps this process pings
    started = dt.datetime.now(dt.UTC)
    load_before = load_average()
    print(f"bench: logs in {bench.tmp / 'logs'}; load average {load_before}", flush=True)
    try:
        bench.set_up()
        if options.serve:
            serve(bench)
            return 0
        run_scenarios(bench)
    finally:
        load_after = load_average()
        bench.tear_down()
    rows = build_rows(bench.results)
    print_report(bench.results, rows, load=(load_before, load_after))
    write_results(bench, rows, started=started, load=(load_before, load_after))
    return 0


def run_scenarios(bench: Bench) -> None:
    """Each chosen scenario in turn; one that fails is recorded and the others still run."""
    options = bench.options
    for name, step in SCENARIOS:
        if name == "overhead" and not any(map(options.wants, ("overhead", "stream", "pipeline"))):
            continue
        if name != "overhead" and not options.wants(name):
            continue
        print(f"bench: {step.__name__.removeprefix('scenario_')} …", flush=True)
        try:
            step(bench)
        except Exception as error:  # the other scenarios still run, and the table says what failed
            traceback.print_exc()
            bench.results.setdefault("failed", {})[name] = repr(error)
            for process in ("worker_ai", "baseline_worker", "worker_io"):
                bench.processes.stop(process)
    web = [rss_mb(pid) for pid in bench.web_workers()]
    bench.results.setdefault("memory", {})["web worker"] = web
    baseline = [rss_mb(pid) for pid in bench.web_workers("baseline_web")]
    bench.results["memory"]["baseline web worker"] = baseline


def print_report(results: dict[str, Any], rows: list[Row], *, load: tuple[list[float], list[float]]) -> None:
    print()
    print(render(rows))
    cpu = render_cpu(results)
    if cpu:
        print(f"\n{cpu}")
    hand = results.get("hand_offs_us")
    if hand:
        print(
            "\none round trip, back to back / after 20 ms idle: "
            + ", ".join(
                f"{name} {' / '.join(f'{us:g}' for us in spans.values())} µs" for name, spans in hand.items()
            )
        )
    for name, error in results.get("failed", {}).items():
        print(f"FAILED: {name}: {error}")
    print(f"\nload average before {load[0]}, after {load[1]}")


def write_results(
    bench: Bench, rows: list[Row], *, started: dt.datetime, load: tuple[list[float], list[float]]
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    record = {
        "date": started.isoformat(),
        "machine": machine(),
        "load_average": {"before": load[0], "after": load[1]},
        "options": {k: str(v) for k, v in vars(bench.options).items()},
        "settings": {
            "web": f"gunicorn, {WEB_WORKERS} gevent workers x {WEB_CONNECTIONS} connections "
            "(Conveyor and baseline)",
            "worker_ai": f"prefork x {AI_WORKER_CONCURRENCY} (Conveyor and raw Celery)",
            "io_worker": f"one process, gevent pool x {IO_CONCURRENCY}",
            "load": f"wrk -t1 -c{CONNECTIONS}; bench/load.py for pipeline, io, overhead",
            "users": f"{USERS} users on the {bench_plan()} plan with limits lifted (bench/plan.py)",
            "provider": "bench/fake_provider.py over the openai SDK (AI_PROVIDER=openai)",
        },
        "table": [vars(row) for row in rows],
        "raw": bench.results,
    }
    out.write_text(json.dumps(record, indent=2, default=str))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
