"""The batch lane's beat task; the logic lives in workers/batch_lane/."""

from __future__ import annotations

from celery import shared_task

from settings import get_settings
from tasks import email, webhooks
from tasks.generation import dispatch
from workers import locks
from workers.batch_lane import tick as lane

# Longer than a tick can take (uploads and downloads included).
LOCK_TIMEOUT = 600


@shared_task(name="conveyor.batch_lane.tick", ignore_result=True)
def tick() -> int | None:
    """Follow, take out and gather (workers/batch_lane/tick.py); returns how many jobs
    their batches finished. Under a lock: two ticks never send a job twice."""
    return locks.run_exclusively("batch_lane.tick", run_tick, timeout=LOCK_TIMEOUT)


def run_tick() -> int:
    followed = lane.run(get_settings(), dispatch)
    for job in followed.finished:  # the outboxes' sweeps would send these later anyway
        if job.webhook:
            webhooks.deliver_for_job(job.job_id)
        if job.notify_email:
            email.send_for_job(job.job_id)
        if job.batch_id is not None:
            webhooks.deliver_for_batch(job.batch_id)
    return len(followed.finished)
