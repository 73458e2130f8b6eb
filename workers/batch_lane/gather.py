"""Gather held jobs into one Batch per model: the file, the upload, the batch, its id
on the jobs."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from typing import Any

import openai

from db.repositories import batch_lane
from db.session import session_scope
from settings import Settings
from workers import provider_request
from workers.batch_lane import ENDPOINT
from workers.batch_lane.client import BatchClient
from workers.providers.openai_provider import chat_body
from workers.tools import get_tool

logger = logging.getLogger(__name__)


def gather(settings: Settings, client: BatchClient) -> list[str]:
    """Send every held job not sent yet, one batch per model; returns the batch ids made.
    A job whose deadline leaves less than BATCH_LANE_TAKEOUT is left for the take-out.
    A model whose upload or batch the provider refuses is tried again next tick."""
    deadline_after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.batch_lane_takeout)
    with session_scope() as session:
        rows = batch_lane.unsent(session, deadline_after=deadline_after, limit=settings.batch_lane_max_jobs)
    by_model: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_model[row.model].append(row)
    made = []
    for model, jobs in by_model.items():
        batch_id = _send(client, model, jobs)
        if batch_id is not None:
            made.append(batch_id)
    return made


def request_line(job: Any) -> dict[str, Any] | None:
    """The job's line in the batch file: exactly the request the normal lane would send,
    not streamed. None for a tool that no longer exists (the normal lane fails it)."""
    tool = get_tool(job.tool)
    if tool is None:
        return None
    profile = provider_request.owner_profile(job.owner_name, job.profile)
    request = provider_request.build(tool, dict(job.input), profile, model=job.model)
    body = chat_body(request, stream=False)
    return {"custom_id": str(job.id), "method": "POST", "url": ENDPOINT, "body": body}


def _send(client: BatchClient, model: str, jobs: list[Any]) -> str | None:
    lines = [line for line in map(request_line, jobs) if line is not None]
    if not lines:
        return None
    jsonl = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    try:
        input_file_id, batch = client.submit(jsonl, metadata={"source": "conveyor", "model": model})
    except openai.OpenAIError:  # the jobs stay held, and are sent on the next tick
        logger.warning("batch lane: could not send %s jobs of model %s", len(lines), model, exc_info=True)
        return None
    with session_scope() as session:
        batch_lane.add_batch(
            session,
            batch_id=batch.id,
            model=model,
            input_file_id=input_file_id,
            jobs=len(lines),
            status=batch.status,
        )
        sent = batch_lane.assign(session, job_ids=[job.id for job in jobs], provider_batch_id=batch.id)
    logger.info(
        "batch lane: batch %s of model %s has %s lines, for %s jobs still held",
        batch.id,
        model,
        len(lines),
        sent,
    )
    return batch.id
