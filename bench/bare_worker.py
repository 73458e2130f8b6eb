"""The bare chain's worker, the overhead's baseline (bench/run.py starts it for that
scenario only): take each message `POST /submit` pushed (BRPOP), mark its row done,
and push to the key the job's long-poll waits on (bench/baseline_app.py). One
process, psycopg2 and redis-py: the least a worker must do between a submit and a
result a poller sees.
"""

from __future__ import annotations

import json
import os

import psycopg2
from redis import Redis

from bench.baseline_app import DONE_PREFIX, QUEUE

OUTPUT = json.dumps({"text": "done"})


def main() -> None:
    redis = Redis.from_url(os.environ["BASELINE_REDIS_URL"])
    database = psycopg2.connect(os.environ["BASELINE_DATABASE_URL"])
    database.autocommit = True
    while True:
        _, message = redis.brpop([QUEUE])
        job_id = json.loads(message)["id"]
        with database.cursor() as cursor:
            cursor.execute(
                "UPDATE bench_jobs SET status = 'succeeded', output = %s WHERE id = %s", (OUTPUT, job_id)
            )
        redis.lpush(DONE_PREFIX + job_id, "1")


if __name__ == "__main__":
    main()
