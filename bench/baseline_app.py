"""The web baseline: bare Flask views doing the least each Conveyor endpoint must do.

- `POST /submit`: insert a row with psycopg2 and push a message to a Redis list;
- `GET /jobs/<id>`: select a row by key;
- `GET /hello`: nothing (the 304 path is compared with this);
- `GET /jobs/<id>/wait`: `GET /jobs/<id>`, but while the row is queued it first waits
  (up to 30 s) for bench/bare_worker.py to say it is done, a BLPOP on a key of the
  job's: with `POST /submit` and that worker, the bare chain the overhead is
  compared with.

No authentication, validation, metrics, logging or ORM: what is left is Flask,
gunicorn, Postgres and Redis on this machine. It runs under the same gunicorn
flags as Conveyor's web (bench/run.py), with psycopg2 made cooperative as in
gunicorn.conf.py (bench/baseline_gunicorn.py).
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager

import psycopg2
import psycopg2.extras
from flask import Flask, jsonify, request
from redis import Redis

QUEUE = "bench:baseline:queue"
DONE_PREFIX = "bench:baseline:done:"  # + a job's id: bench/bare_worker.py pushes, a long-poll pops
SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_jobs (
    id uuid PRIMARY KEY,
    owner text NOT NULL,
    tool text NOT NULL,
    status text NOT NULL DEFAULT 'queued',
    input jsonb NOT NULL,
    output jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""

app = Flask(__name__)
_idle: list = []
_redis: Redis | None = None


def _dsn() -> str:
    return os.environ["BASELINE_DATABASE_URL"]


@contextmanager
def _cursor():
    # Connections are kept for the next request, as SQLAlchemy's pool keeps Conveyor's
    # (psycopg2's own pool closes every one returned beyond its minimum). One gevent
    # worker runs in one thread, so a list will do.
    connection = _idle.pop() if _idle else psycopg2.connect(_dsn())
    try:
        with connection, connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            yield cursor
    finally:
        _idle.append(connection)


def _queue() -> Redis:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["BASELINE_REDIS_URL"])
    return _redis


@app.post("/submit")
def submit():
    body = request.get_json()
    job_id = uuid.uuid4()
    owner = request.headers.get("Authorization", "")[-16:]
    with _cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_jobs (id, owner, tool, input) VALUES (%s, %s, %s, %s)",
            (str(job_id), owner, body["tool"], json.dumps(body["input"])),
        )
    _queue().lpush(QUEUE, json.dumps({"id": str(job_id), "tool": body["tool"]}))
    return jsonify({"id": str(job_id), "status": "queued"}), 202


def _select(job_id: uuid.UUID):
    with _cursor() as cursor:
        cursor.execute("SELECT * FROM bench_jobs WHERE id = %s", (str(job_id),))
        return cursor.fetchone()


@app.get("/jobs/<uuid:job_id>")
def get_job(job_id: uuid.UUID):
    row = _select(job_id)
    if row is None:
        return jsonify({"message": "not found"}), 404
    return jsonify(row)


@app.get("/jobs/<uuid:job_id>/wait")
def wait_job(job_id: uuid.UUID):
    row = _select(job_id)
    done = DONE_PREFIX + str(job_id)
    if row is not None and row["status"] == "queued" and _queue().blpop([done], timeout=30) is not None:
        row = _select(job_id)
    if row is None:
        return jsonify({"message": "not found"}), 404
    return jsonify(row)


@app.get("/hello")
def hello():
    return "hello"
