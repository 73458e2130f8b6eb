"""What a bench run is: the sizes of its set-up and scenarios, where it writes, and the
options of the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import ROOT

RESULTS = ROOT / "bench" / "results"


ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@localhost:5432/postgres")


REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379")


CLAIM_KEY = "conveyor:test-run"  # the key tests/conftest.py claims a Redis db with: runs skip each other


# The Procfile's defaults (web, worker_ai): the same flags for Conveyor and the baselines.
WEB_WORKERS = 2


WEB_CONNECTIONS = 1000


AI_WORKER_CONCURRENCY = 4


CONNECTIONS = 16  # wrk's, for submit and poll (issue 7)


USERS = 50


IO_JOBS = 1000


IO_LATENCY = 1.0


IO_LONG_LATENCY = 5.0  # the I/O scenario's last run: calls of seconds, as AI calls are


IO_CONCURRENCY = 1000  # greenlets in the one gevent AI worker process


STREAM_WAIT = 0.2  # seconds the provider waits before answering in the stream scenario


STREAM_PAUSE = 0.1  # seconds between its first piece of text and the rest


AI_QUEUE = "ai_priority"  # where the business plan's AI jobs go (workers.plans.queue_for)


@dataclass
class Options:
    runs: int = 5
    duration: float = 10.0
    warmup: float = 3.0
    pipeline_runs: int = 3
    pipeline_jobs: int = 1000
    pipeline_tasks: int = 5000
    io_runs: int = 3
    overhead_jobs: int = 200
    stream_jobs: int = 100
    only: set[str] = field(default_factory=set)
    profile: Path | None = None
    max_load: float = 0.0
    serve: bool = False

    def wants(self, scenario: str) -> bool:
        return not self.only or scenario in self.only
