"""Raw Celery baselines on the same Redis, Celery's defaults (bench/run.py starts them).

- pipeline: no-op tasks that only count themselves (INCR), so that the bench knows
  when all are done: `celery -A bench.baseline_celery worker -Q bench_noop -c 4`.
- I/O: tasks that wait `seconds` (gevent's sleep under `--pool gevent`: the same
  wait as an HTTP call) and record when they ran, in one gevent process with the
  AI worker's pool: what Celery alone achieves with 1,000 waits at once. And tasks
  that make a job's provider call and nothing else (`call`, bench/provider_call.py: the
  request a text job builds, sent by Conveyor's provider, the openai SDK over its
  transport, to the bench's provider, which waits): what Celery and the call together
  achieve, between raw Celery's waits and Conveyor's whole jobs.
"""

from __future__ import annotations

import os
import time

from celery import Celery
from redis import Redis

from bench.provider_call import SPANS_KEY, record_call

QUEUE = "bench_noop"
DONE_KEY = "bench:noop:done"
SLEEP_QUEUE = "bench_sleep"

app = Celery("bench_baseline", broker=os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_redis: Redis | None = None


def _client() -> Redis:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["REDIS_URL"])
    return _redis


@app.task(name="bench.noop")
def noop() -> None:
    _client().incr(DONE_KEY)


@app.task(name="bench.sleep")
def sleep(seconds: float) -> None:
    started = time.time()
    time.sleep(seconds)
    _client().rpush(SPANS_KEY, f"{started} {time.time()}")


@app.task(name="bench.call")
def call() -> None:
    record_call(_client())
