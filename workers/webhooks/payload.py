"""The webhook body: `{"type": "job.<status>", "timestamp": …, "data": <the job>}`, or
for a batch `{"type": "batch.finished", …, "data": <the batch>}`.

`data` is the job exactly as `GET /api/v1/jobs/<id>` shows it (api/schemas/jobs.py
JobSchema). Workers cannot import the API, so the same fields are built here and
a test compares the two for the same job.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from db.models import Batch, Job
from settings import Settings, get_settings
from workers import job_links, metering


def body(*, event: str, occurred_at: dt.datetime, job: Job, settings: Settings | None = None) -> str:
    """The exact text that is signed and sent (the same for every attempt: the stream
    URL in the job's `urls` is the one handed out when the event occurred)."""
    data = job_data(job, settings=settings or get_settings(), now=occurred_at.timestamp())
    document = {"type": event, "timestamp": occurred_at.isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def batch_body(*, event: str, occurred_at: dt.datetime, batch: Batch, counts: dict[str, int]) -> str:
    """A batch's `batch.finished`: `data` is the batch as `GET /api/v1/batches/<id>` shows
    it, without its page of jobs."""
    document = {"type": event, "timestamp": occurred_at.isoformat(), "data": batch_data(batch, counts)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def batch_data(batch: Batch, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": str(batch.id),
        "status": "finished" if batch.finished_at is not None else "active",
        "total": sum(counts.values()),
        "counts": counts,
        "webhook_url": batch.webhook_url,
        "created_at": _iso(batch.created_at),
        "finished_at": _iso(batch.finished_at),
    }


def job_data(job: Job, *, settings: Settings, now: float | None = None) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "tool": job.tool,
        "status": job.status,
        "input": job.input,
        "output": job.output,
        "output_url": None,
        "error": None if job.error_code is None else {"code": job.error_code, "message": job.error_message},
        "progress": job.progress,
        "model": job.model,
        "attempt": job.attempt,
        "usage": metering.job_usage(job),
        "cached": job.cached,
        "cancel_requested": job.cancel_requested_at is not None,
        "notify_email": job.notify_email,
        "retry_of": None if job.retry_of is None else str(job.retry_of),
        "batch_id": None if job.batch_id is None else str(job.batch_id),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "expires_at": _iso(job.expires_at),
        "run_at": _iso(job.run_at),
        "lane": metering.job_lane(job),
        "deadline": _iso(job.deadline),
        "urls": job_links.urls(job, settings=settings, now=now),
        "queue": None,  # a finished job has no place in a queue
        "feedback": _feedback(job),
        "service_tier": job.service_tier,
        "answered_by": job.answered_by,
        "attempts": job.attempts,
    }


def _feedback(job: Job) -> dict[str, Any] | None:
    if job.feedback_rating is None:
        return None
    updated_at = _iso(job.feedback_at)
    return {"rating": job.feedback_rating, "comment": job.feedback_comment, "updated_at": updated_at}


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
