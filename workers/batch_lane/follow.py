"""Follow the open batches: record each answered job once, send the rest to the normal
lane, and cancel a batch no job waits for any more."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import openai

from db.models.job import SCHEDULED
from db.redis_client import get_redis
from db.repositories import batch_lane, conversations, jobs
from db.repositories import usage as usage_repo
from db.session import session_scope, standalone
from settings import Settings
from workers import catalogue, job_stream, metering, metrics, outputs
from workers.batch_lane import results
from workers.batch_lane.client import BatchClient
from workers.batch_lane.takeout import take_out
from workers.provider_text import storable
from workers.tools import get_tool
from workers.tools.base import Tool

logger = logging.getLogger(__name__)

ENDED = ("completed", "failed", "expired", "cancelled")  # the provider answers nothing more
LEDGER_ATTEMPT = 0  # a worker's attempts count from 1: the batch call never collides with one


@dataclass(frozen=True)
class Recorded:
    """A job its batch finished, and what to send now that it is committed."""

    job_id: uuid.UUID
    status: str
    webhook: bool
    notify_email: bool
    batch_id: uuid.UUID | None  # the POST /jobs/batch it was submitted in


@dataclass
class Followed:
    finished: list[Recorded] = field(default_factory=list)
    taken_out: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (job, owner)


def follow(settings: Settings, client: BatchClient) -> Followed:
    """One look at every open batch. A provider error leaves that batch for the next tick."""
    followed = Followed()
    with session_scope() as session:
        open_ids = batch_lane.open_batches(session)
    for batch_id in open_ids:
        try:
            _follow_one(settings, client, batch_id, followed)
        except openai.OpenAIError:
            logger.warning("batch lane: could not follow batch %s", batch_id, exc_info=True)
    return followed


def _follow_one(settings: Settings, client: BatchClient, batch_id: str, followed: Followed) -> None:
    with session_scope() as session:
        sent = {str(row.id): row for row in batch_lane.of_batch(session, provider_batch_id=batch_id)}
    waiting = [row.id for row in sent.values() if row.status == SCHEDULED]
    batch = client.retrieve(batch_id)
    if batch.status not in ENDED:
        if not waiting:  # every job was canceled or taken out: stop paying for it
            client.cancel(batch_id)
            _close(batch_id, "cancelling")
            logger.info("batch lane: canceled batch %s, which no job waits for", batch_id)
        return
    answered: set[uuid.UUID] = set()
    for text in client.lines(batch.output_file_id) + client.lines(batch.error_file_id):
        line = json.loads(text)
        job = sent.get(line.get("custom_id"))
        if job is None:
            continue
        tool = get_tool(job.tool)
        outcome = results.read(line, tool) if tool is not None else None
        if outcome is None:
            continue  # not answered: to the normal lane below
        answered.add(job.id)
        recorded = record(settings, job, tool, outcome)
        if recorded is not None:
            followed.finished.append(recorded)
    rest = [job_id for job_id in waiting if job_id not in answered]
    if rest:
        followed.taken_out += take_out(settings, job_ids=rest)
    _close(batch_id, batch.status)
    logger.info(
        "batch lane: batch %s %s: %s recorded, %s to the normal lane",
        batch_id,
        batch.status,
        len(answered),
        len(rest),
    )


def record(settings: Settings, job: Any, tool: Tool, outcome: results.Outcome) -> Recorded | None:
    """Record the job's outcome from its batch, once: a compare-and-set from `scheduled`,
    so a job taken out to the normal lane (or canceled) meanwhile keeps its own outcome.
    The call goes to the ledger at the catalogue's batch price either way; billed only if this
    outcome stands and is a billed one. None when it did not stand. `job` as read before
    the batch was retrieved: one no longer held then gets no output stored (a large one
    would take the place of the normal lane's in storage)."""
    completion = outcome.completion
    prices = catalogue.get_catalogue(settings)
    calls = metering.ledger_calls([completion] if completion is not None else [], job.model, prices)
    spent = jobs.Usage(
        input_tokens=sum(call.input_tokens for call in calls),
        output_tokens=sum(call.output_tokens for call in calls),
        cost_micros=sum(call.cost_micros for call in calls),
    )
    ledger = usage_repo.Attempt(job.id, LEDGER_ATTEMPT, job.user_id, job.tool, calls)
    output = storable(outcome.output) if job.status == SCHEDULED else None
    row_output, output_key = outputs.store_if_large(
        output, user_id=job.user_id, job_id=job.id, settings=settings
    )
    reply = output.get("text") if output and tool.conversation else None
    finished = jobs.Outcome(
        outcome.status,
        output=row_output,
        output_key=output_key,
        error_code=outcome.code,
        error_message=outcome.message,
        usage=spent,
        ledger=ledger,
        billable=outcome.status in metering.BILLED_STATUSES,
    )
    if reply is None:
        with standalone() as connection:
            done = jobs.finish(connection, job_id=job.id, outcome=finished, from_statuses=(SCHEDULED,))
    else:
        with session_scope() as session:
            done = jobs.finish(session, job_id=job.id, outcome=finished, from_statuses=(SCHEDULED,))
            if done:
                conversations.add_reply(session, job_id=job.id, content=reply)
    if calls:
        metrics.usage(
            model=calls[0].model,
            input_tokens=spent.input_tokens,
            output_tokens=spent.output_tokens,
            cost_micros=spent.cost_micros,
        )
    if not done:
        logger.info("job_id=%s late batch answer ignored: the job is no longer held for it", job.id)
        return None
    metrics.job_finished(tool=job.tool, status=outcome.status, code=outcome.code)
    error = {"code": outcome.code, "message": outcome.message} if outcome.code else None
    job_stream.publish(get_redis(), job.id, job_stream.DONE, {"status": outcome.status, "error": error})
    logger.info("job_id=%s %s code=%s through the batch lane", job.id, outcome.status, outcome.code)
    return Recorded(job.id, outcome.status, job.webhook_url is not None, job.notify_email, job.batch_id)


def _close(batch_id: str, provider_status: str) -> None:
    with session_scope() as session:
        batch_lane.close_batch(session, batch_id=batch_id, provider_status=provider_status)
