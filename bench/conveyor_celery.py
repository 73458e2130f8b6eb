"""Conveyor's Celery app (workers/celery_app.py) with the bench plan installed (bench/plan.py),
and one bench task: a job's provider call and nothing else, delivered as Conveyor's worker
delivers its jobs (its transport, pool, signals and logging), so that the I/O scenario can
tell what the call costs this process from what a job adds around it."""

from bench import plan

plan.install()

from bench.provider_call import record_call  # noqa: E402
from db.redis_client import get_redis  # noqa: E402
from workers.celery_app import app  # noqa: E402

__all__ = ["app"]


@app.task(name="bench.conveyor_call")
def conveyor_call() -> None:
    record_call(get_redis())
