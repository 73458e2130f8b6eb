"""The webhook body: `{"type": "job.<status>", "timestamp": …, "data": <the job>}`.

`data` is the job exactly as `GET /api/v1/jobs/<id>` shows it (api/schemas/jobs.py
JobSchema). Workers cannot import the API, so the same fields are built here and
a test compares the two for the same job.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from db.models import Job


def body(*, event: str, occurred_at: dt.datetime, job: Job) -> str:
    """The exact text that is signed and sent (the same for every attempt)."""
    document = {"type": event, "timestamp": occurred_at.isoformat(), "data": job_data(job)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def job_data(job: Job) -> dict[str, Any]:
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
        "usage": {
            "input_tokens": job.input_tokens,
            "output_tokens": job.output_tokens,
            "cost_micros": job.cost_micros,
        },
        "cancel_requested": job.cancel_requested_at is not None,
        "notify_email": job.notify_email,
        "retry_of": None if job.retry_of is None else str(job.retry_of),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "expires_at": _iso(job.expires_at),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
