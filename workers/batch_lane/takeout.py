"""Jobs leave the batch lane for the normal one: their deadline is near, or their batch
could not answer for them."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence

from db.models.job import QUEUED
from db.redis_client import get_redis
from db.repositories import batch_lane
from db.session import session_scope
from settings import Settings
from workers import job_stream

logger = logging.getLogger(__name__)


def take_out(
    settings: Settings, *, job_ids: Sequence[uuid.UUID] = (), due: bool = False
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Queue the given held jobs, or (`due`) every held job whose deadline is within
    BATCH_LANE_TAKEOUT, on the normal lane; returns (job id, owner) of each moved. The
    caller admits the owners' jobs (workers/admission.py), as for a scheduled job that
    came due. Each move is a compare-and-set from `scheduled`: a job its batch answered
    meanwhile stays as it was recorded."""
    due_by = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.batch_lane_takeout) if due else None
    if not due and not job_ids:
        return []
    with session_scope() as session:
        moved = batch_lane.take_out(
            session, job_ids=job_ids, due_by=due_by, start_within=settings.job_start_deadline
        )
    redis = get_redis()
    for job_id, _owner in moved:
        job_stream.publish(redis, job_id, job_stream.STATUS, {"status": QUEUED})
    if moved:
        logger.info("batch lane: %s jobs to the normal lane", len(moved))
    return moved
