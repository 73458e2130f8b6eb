"""The pipeline baseline: raw Celery no-op tasks on the same Redis, Celery's defaults.

Each task only counts itself (INCR), so that the bench knows when all are done.
`celery -A bench.baseline_celery worker -Q bench_noop -c 4` (bench/run.py).
"""

from __future__ import annotations

import os

from celery import Celery
from redis import Redis

QUEUE = "bench_noop"
DONE_KEY = "bench:noop:done"

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


@app.task(name="bench.noop")
def noop() -> None:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["REDIS_URL"])
    _redis.incr(DONE_KEY)
