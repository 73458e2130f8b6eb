"""Deleting a finished job and what it left behind: its stored output, its exports'
files, its row (exports and a webhook delivery not yet sent go with it), the answer
it left in the response cache, and its events. The usage ledger keeps the job's
provider calls: billing and GET /usage count them after the job is gone.

The stored objects go first and the row after, as the retention clean-ups do: if the
store fails, the row still names its objects and the delete can be tried again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from db.models.job import TERMINAL
from db.redis_client import get_redis
from db.repositories import exports, jobs, response_cache
from workers import job_stream
from workers.storage import Storage, job_output_key

logger = logging.getLogger(__name__)


REMOVED = "removed"
NOT_FINISHED = "not_finished"
EXPORTING = "exporting"  # an export of it is being built: its file would outlive the job


def remove(session: Session, *, job: Any, storage: Storage) -> str:
    """Remove a finished job (any object with its `id`, `user_id`, `status` and
    `output_key`) in the caller's transaction, which commits it: REMOVED, or why not
    (nothing is removed then). Raises StorageError (or OSError) when the store cannot
    delete its objects; the row is kept."""
    if job.status not in TERMINAL:
        return NOT_FINISHED
    if exports.building_for_job(session, job_id=job.id):
        return EXPORTING
    keys = [job_output_key(job.user_id, job.id)]
    if job.output_key and job.output_key not in keys:
        keys.append(job.output_key)
    keys += exports.storage_keys_for_job(session, job_id=job.id)
    for key in keys:
        storage.delete(key)  # no error when it is not there
    if jobs.delete_finished(session, job_id=job.id):
        # What it answered goes too: a cached copy would serve the deleted output again.
        response_cache.forget_answer_of(session, job_id=job.id)
        return REMOVED
    if jobs.get(session, job_id=job.id) is None:
        return REMOVED  # by another call a moment ago
    return EXPORTING if exports.building_for_job(session, job_id=job.id) else NOT_FINISHED


def forget_events(job_ids: Sequence[uuid.UUID]) -> None:
    """After the delete committed: the jobs' event streams."""
    job_stream.forget(get_redis(), list(job_ids))
