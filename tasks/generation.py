"""The generation task: take a job id, run the pipeline, record the outcome."""

from __future__ import annotations

import uuid

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from workers import pipeline

RUN = "conveyor.generation.run"


@shared_task(name=RUN, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_generation(job_id: str) -> str | None:
    return pipeline.run_job(uuid.UUID(job_id), timeout_errors=(SoftTimeLimitExceeded,))


def dispatch(job_id: uuid.UUID, *, queue: str, priority: int = 0) -> None:
    """Send the job's message. Call only after the job's row is committed."""
    run_generation.apply_async(args=[str(job_id)], task_id=str(job_id), queue=queue, priority=priority)
