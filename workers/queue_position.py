"""Where a queued job stands in its queue, and about how long until it starts.

A poll must not count the queue, so the place is read from counters in Redis, kept
beside the broker's queues they describe (lost with them, when Redis restarts, and
renewed as the lost jobs are sent again):

- sent: each message sent to a queue takes the queue's next number (INCR), kept
  under the job's id until it starts.
- started: a job that starts raises its queue's "started up to" mark to its number.
  A mark, not a count: a job that never starts (canceled, expired, its message lost
  and sent again under a new number) leaves a gap the mark steps over, rather than
  an error every later job carries for good.

A sent job has (its number - the mark - 1) jobs ahead in its queue. That over-counts
jobs canceled or expired while waiting ahead of it, and under-counts for a moment
when a worker takes a later message first (the mark jumps past an earlier job still
waiting): both end when the jobs around it start. A queue drained after another one
(`ai` after `ai_priority`) also has that queue's backlog ahead. A job held back by
its owner's running limit (workers/admission.py) waits behind everything sent now,
and behind its owner's older held jobs (counted in Postgres, among that owner's own
jobs only). Jobs sent later for other users that the fair share lets in first are
not counted.

The estimate: the jobs ahead, each taking the mean recent run time of the job's tool
and model (an average kept as jobs succeed, recent runs weighing most), shared among
the live workers' processes on the queue (their heartbeats, workers/queues.py).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from db.redis_client import key
from workers import queues

logger = logging.getLogger(__name__)

# A queue's workers take these queues' messages first (celeryconfig's queue order).
DRAINED_FIRST = {"ai": ("ai_priority",)}
NUMBER_TTL_SECONDS = 7 * 24 * 3600  # longer than any job waits to start
RECENT_WEIGHT = 0.3  # of the newest run time in the mean
CAPACITY_CACHE_SECONDS = 2.0  # the heartbeats themselves change only every few seconds
RUN_SECONDS = key("queue", "run_seconds")

_SEND = """
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'EX', ARGV[1])
return n
"""
_START = """
local n = tonumber(redis.call('GET', KEYS[2]))
if n and n > tonumber(redis.call('GET', KEYS[1]) or '0') then redis.call('SET', KEYS[1], n) end
redis.call('DEL', KEYS[2])
return n
"""
_RAN = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
local new = tonumber(ARGV[2])
if old then new = old + tonumber(ARGV[3]) * (new - old) end
redis.call('HSET', KEYS[1], ARGV[1], tostring(new))
return tostring(new)
"""


@dataclass(frozen=True)
class Place:
    ahead: int
    eta_seconds: int | None  # None: no live worker takes the queue, or no run time known yet

    def as_dict(self) -> dict[str, int | None]:
        return {"position": self.ahead + 1, "ahead": self.ahead, "eta_seconds": self.eta_seconds}


def _last_key(queue: str) -> str:
    return key("queue", queue, "sent")


def _mark_key(queue: str) -> str:
    return key("queue", queue, "started")


def _number_key(job_id: uuid.UUID) -> str:
    return key("queue", "job", job_id)


def sent(redis: Redis, job_id: uuid.UUID, *, queue: str) -> None:
    """The job's message goes to `queue` now: it takes the queue's next number.
    Call it before sending, so that a worker quick to start the job finds it."""
    try:
        redis.eval(_SEND, 2, _last_key(queue), _number_key(job_id), NUMBER_TTL_SECONDS)
    except RedisError as error:  # its place is then estimated as the back of the queue
        logger.info("job_id=%s no queue number: %s", job_id, error)


Command = Callable[["Redis | Pipeline"], object]


def on_start(job_id: uuid.UUID, *, queue: str) -> Command:
    """`started`'s write, for a caller that sends it with others in one round trip (the
    worker, with the job's `status` event: job_stream.publish_all's `also`)."""
    return lambda redis: redis.eval(_START, 2, _mark_key(queue), _number_key(job_id))


def on_success(*, tool: str, model: str, seconds: float) -> Command:
    """`ran`'s write, to send with others (the worker, with the job's `done` event)."""
    field = f"{tool}:{model}"
    return lambda redis: redis.eval(_RAN, 1, RUN_SECONDS, field, repr(seconds), repr(RECENT_WEIGHT))


def started(redis: Redis, job_id: uuid.UUID, *, queue: str) -> None:
    """The job started: its queue's mark moves up to its number."""
    try:
        on_start(job_id, queue=queue)(redis)
    except RedisError as error:  # the next job to start moves the mark past it
        logger.info("job_id=%s queue mark not moved: %s", job_id, error)


def ran(redis: Redis, *, tool: str, model: str, seconds: float) -> None:
    """A job of this tool and model succeeded after running `seconds`."""
    try:
        on_success(tool=tool, model=model, seconds=seconds)(redis)
    except RedisError as error:
        logger.info("run time of %s not kept: %s", tool, error)


def place(
    redis: Redis, *, job_id: uuid.UUID, queue: str, tool: str, model: str, held_ahead: int | None
) -> Place | None:
    """A queued job's place. `held_ahead`: None for a job whose message was sent, else
    how many of its owner's older jobs are held with it. None when Redis cannot say."""
    watched = (queue, *DRAINED_FIRST.get(queue, ()))
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.mget([_number_key(job_id), *(k for q in watched for k in (_last_key(q), _mark_key(q)))])
        pipe.hget(RUN_SECONDS, f"{tool}:{model}")
        values, mean = pipe.execute()
        workers = _capacity(redis, queue)
    except RedisError as error:
        logger.info("job_id=%s place unknown: %s", job_id, error)
        return None
    number = int(values[0]) if values[0] is not None else None
    counts = [int(value or 0) for value in values[1:]]
    waiting = [max(0, last - mark) for last, mark in zip(counts[0::2], counts[1::2], strict=True)]
    last, mark = counts[0], counts[1]
    backlog = sum(waiting[1:])
    if held_ahead is None and number is not None and number <= last:
        ahead = max(0, number - mark - 1)
    else:  # held, or sent before Redis lost its counters: behind all that waits now
        ahead = waiting[0] + (held_ahead or 0)
    ahead += backlog
    eta = None
    if mean is not None and workers:
        eta = math.ceil(ahead * float(mean) / workers)
    return Place(ahead=ahead, eta_seconds=eta)


_capacity_cache: dict[str, tuple[float, int]] = {}


def _capacity(redis: Redis, queue: str) -> int:
    """Processes the live workers run for `queue`, read at most every CAPACITY_CACHE_SECONDS
    while there are some; none is not kept, so a worker that has just started counts at once."""
    now = time.monotonic()
    cached = _capacity_cache.get(queue)
    if cached is not None and now - cached[0] < CAPACITY_CACHE_SECONDS:
        return cached[1]
    total = queues.capacity(redis, queue)
    if total:
        _capacity_cache[queue] = (now, total)
    return total
