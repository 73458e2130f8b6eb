"""Job outputs too large for the row: stored as `users/<uid>/jobs/<job id>/output.json`,
with the row keeping only the key (`jobs.output_key`; `output` stays null)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from db.models import Job
from settings import Settings
from workers.storage import StorageError, get_storage, job_output_key

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class DownloadLink:
    url: str
    expires_at: dt.datetime


def encode(output: Any) -> bytes:
    return json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode()


def store_if_large(
    output: dict[str, Any] | None, *, user_id: uuid.UUID, job_id: uuid.UUID, settings: Settings
) -> tuple[dict[str, Any] | None, str | None]:
    """(what the row keeps as `output`, the storage key or None). Small outputs stay
    in the row. If the store cannot take a large one, the row keeps it anyway: a
    result that was paid for is worth more than a slim row."""
    if output is None:
        return None, None
    data = encode(output)
    if len(data) <= settings.output_inline_max_bytes:
        return output, None
    key = job_output_key(user_id, job_id)
    try:
        get_storage(settings).put(key, data, CONTENT_TYPE)
    except (StorageError, OSError):
        logger.exception("job_id=%s output of %s bytes not stored; kept in the row", job_id, len(data))
        return output, None
    # A second delivery of the same job writes the same key, so a dropped outcome
    # leaves nothing behind that the winner does not also point at.
    return None, key


def load(job: Job, *, settings: Settings) -> dict[str, Any] | None:
    """The job's output wherever it lives (None once retention removed it)."""
    if job.output is not None or job.output_key is None:
        return job.output
    try:
        return json.loads(get_storage(settings).get(job.output_key))
    except StorageError:
        logger.warning("job_id=%s stored output %s is missing", job.id, job.output_key)
        return None


def download_link(job: Job, *, settings: Settings) -> DownloadLink | None:
    """A fresh presigned URL for a stored output, or None when the output is in the row."""
    if job.output_key is None:
        return None
    ttl = settings.download_url_ttl
    url = get_storage(settings).presigned_url(
        job.output_key, expires_in=ttl, filename=f"{job.tool}-{job.id}.json"
    )
    return DownloadLink(url=url, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl))
