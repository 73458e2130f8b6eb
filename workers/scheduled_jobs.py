"""Scheduled jobs: Postgres holds a job until its `run_at`, then it is queued.

Not Celery's `eta`/countdown: a worker would hold such a message unacknowledged until
it is due, and the Redis broker hands a message unacknowledged past its visibility
timeout to another worker, so a job scheduled further ahead than that would run twice,
and a purge or a lost Redis would lose it. The row is the only record of the schedule.
The beat asks every second (tasks/job_recovery.py, under a lock) for the rows that
came due; moving them is a compare-and-set (`jobs.queue_due`), so each moves once
however many pickups run. A moved job then waits for admission like a job just
submitted (workers/admission.py: the owner's running limit, oldest first); its
quota was held at submit. A restart loses nothing: the first tick after the beat
and a worker are back queues what came due meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging

from db.models.job import QUEUED
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from workers import admission, job_stream
from workers.admission import Send

logger = logging.getLogger(__name__)

# How far ahead a job may be scheduled: a quota is held for it all that time.
MAX_AHEAD = dt.timedelta(days=30)
BATCH = 500  # due jobs moved per statement


def queue_due(send: Send) -> int:
    """Queue every scheduled job whose time has come and admit their owners' jobs;
    returns how many were queued. A job the broker refuses stays queued, waiting:
    the resend sweep (workers/job_recovery.py) admits it later."""
    moved = []
    while True:
        with session_scope() as session:
            batch = jobs.queue_due(session, limit=BATCH)
        moved += batch
        if len(batch) < BATCH:
            break
    redis = get_redis()
    for job_id, _owner in moved:
        job_stream.publish(redis, job_id, job_stream.STATUS, {"status": QUEUED})
    for owner in dict.fromkeys(owner for _job_id, owner in moved):
        admission.admit(owner, send)
    if moved:
        logger.info("queued %s scheduled jobs that came due", len(moved))
    return len(moved)
