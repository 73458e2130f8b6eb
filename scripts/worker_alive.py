"""A worker's health check for Docker and Kubernetes: exit 0 while the worker named on
the command line sends its heartbeat (the one /ready reads), 1 once it has stopped.

    python -m scripts.worker_alive "ai@$(hostname)"

It reads one Redis key, where `celery inspect ping` would start a Celery app and wait
on the broker for an answer; a worker whose consumer hangs stops beating too.
"""

from __future__ import annotations

import sys

from redis import Redis
from redis.exceptions import RedisError


def main(argv: list[str] | None = None) -> int:
    from settings import get_settings
    from workers.queues import is_alive

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m scripts.worker_alive NAME@HOST", file=sys.stderr)
        return 2
    try:
        redis = Redis.from_url(get_settings().redis_url, socket_timeout=3, socket_connect_timeout=3)
        alive = is_alive(redis, args[0])
    except RedisError as error:
        print(f"worker {args[0]}: Redis unreachable: {error}", file=sys.stderr)
        return 1
    if not alive:
        print(f"worker {args[0]}: no heartbeat", file=sys.stderr)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
