"""A job's provider call and nothing else, as the I/O baselines' tasks make it: in raw
Celery's worker (bench/baseline_celery.py) and in Conveyor's own (bench/conveyor_celery.py),
so that the bench can tell what the call costs a process from what a job adds around it.
Also bench/instructions.py's `call` case.

No Celery app here: Conveyor's worker imports this module, and a second app in its
process could become the current one.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

SPANS_KEY = "bench:sleep:spans"  # "<start> <end>" of each wait or call, for its peak overlap


@lru_cache(maxsize=1)
def job_call() -> tuple[Any, Any]:
    """Conveyor's provider and a text job's first request (workers/pipeline.py builds it
    so), made once: the call is what is measured, not its set-up."""
    from settings import get_settings
    from workers.provider_request import build
    from workers.providers import get_provider
    from workers.tools import get_tool

    request = build(get_tool("text"), {"prompt": "Write a haiku."}, {}, model="gpt-4o-mini")
    return get_provider(get_settings()), request


def record_call(redis: Any) -> None:
    """Make the call (the bench's provider answers after its latency) and record its span."""
    started = time.time()
    provider, request = job_call()
    provider.complete(request)
    redis.rpush(SPANS_KEY, f"{started} {time.time()}")
