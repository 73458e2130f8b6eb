"""The generation task: take a job id, run the pipeline, record the outcome."""

from __future__ import annotations

import uuid

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from db.redis_client import get_redis
from settings import get_settings
from tasks import email, webhooks
from workers import admission, pipeline, queue_position

RUN = "conveyor.generation.run"


class GenerationTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Runs in the worker's main process when it killed the child at the hard
        # limit: the pipeline never got to record anything, so record it here.
        if isinstance(exc, TimeLimitExceeded):
            limit = get_settings().job_hard_time_limit
            pipeline.fail(
                uuid.UUID(args[0]),
                code=pipeline.TIMEOUT,
                message=f"The job was stopped at its {limit} s hard limit.",
                duration=limit,  # Celery stops a delivery when it has run this long
            )


@shared_task(base=GenerationTask, name=RUN, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_generation(job_id: str) -> str | None:
    finished = pipeline.run_job(uuid.UUID(job_id), timeout_errors=(SoftTimeLimitExceeded,))
    if finished is None:
        return None
    if finished.webhook:
        webhooks.deliver_for_job(uuid.UUID(job_id))
    if finished.notify_email:
        email.send_for_job(uuid.UUID(job_id))
    if finished.batch_id is not None:
        webhooks.deliver_for_batch(finished.batch_id)
    if finished.owner_waiting is not None:  # the owner's next job may start
        admission.admit(finished.owner_waiting, send=dispatch)
    return finished.status


def dispatch(job_id: uuid.UUID, *, queue: str) -> None:
    """Send the job's message. Call only after the job's row is committed.

    `declare=[]`: Celery sends a message for a direct exchange's queue to Redis's
    anonymous exchange, straight onto the queue's list, which needs no binding; by
    default it would also check, on every send, that the queue was declared on this
    connection (kombu's maybe_declare binds a copy of the queue each time, work every
    submit would repeat for nothing). Workers declare the queues they consume.
    Each send takes the queue's next number: the job's place in it (workers/queue_position.py)."""
    queue_position.sent(get_redis(), job_id, queue=queue)
    run_generation.apply_async(args=[str(job_id)], task_id=str(job_id), queue=queue, declare=[])


def announce_finished(job_id: uuid.UUID) -> None:
    """Send the webhook and email of a job that ended outside a worker (canceled while it
    waited), each if it asked for one, without waiting for the sweeps. Call after the
    commit."""
    webhooks.deliver_for_job(job_id)
    email.send_for_job(job_id)
