"""What a generation job does: take it, call the provider, record the outcome once."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.exc import OperationalError
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, stop_after_delay, wait_exponential

from db.models.job import CANCELED, FAILED, RUNNING, SUCCEEDED
from db.redis_client import get_redis
from db.repositories import conversations, jobs
from db.repositories import usage as usage_repo
from db.session import session_scope, standalone
from settings import Settings, get_settings
from workers import (
    catalogue,
    fallbacks,
    job_stream,
    lanes,
    logs,
    metering,
    metrics,
    outputs,
    provider_request,
    queue_position,
    response_cache,
)
from workers.breaker import Breaker
from workers.lease import Lease, LeaseLost
from workers.plans import Plan, get_plan
from workers.provider_text import storable
from workers.providers import get_provider
from workers.providers.base import (
    INVALID_OUTPUT,
    INVALID_REQUEST,
    Canceled,
    Completion,
    CompletionRequest,
    Provider,
    ProviderError,
)
from workers.tools import get_tool
from workers.tools.base import Tool

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"
TIMEOUT = "timeout"
CHARS_PER_TOKEN = 4
RECORD_RETRY_SECONDS = 60


@dataclass(frozen=True)
class Work:
    """What the provider call needs, copied out of the session before it is closed."""

    job_id: uuid.UUID
    tool: Tool
    input: dict[str, Any]
    model: str
    profile: dict[str, Any]
    attempt: int
    user_id: uuid.UUID
    settings: Settings
    queue: str = ""  # the queue its message came from (workers/queue_position.py)
    webhook: bool = False  # the job has a webhook_url
    notify_email: bool = False
    batch_id: uuid.UUID | None = None  # the batch it was submitted in (POST /jobs/batch)
    plan: Plan = field(default_factory=lambda: get_plan(None))  # the owner's, for the models it may use
    service_tier: str | None = None  # "flex": asked for the flex lane
    cache_mode: str = response_cache.DEFAULT  # the submit's `cache`: may its answer be stored
    started: float = field(default_factory=time.monotonic)  # for the duration metric

    @property
    def deadline(self) -> float:
        """The monotonic time by which a call must have started for the job to finish within
        its soft time limit: a standard call's timeout before that limit."""
        return self.started + self.settings.job_soft_time_limit - self.settings.openai_timeout


@dataclass(frozen=True)
class Finished:
    """How this delivery ended the job, and what the caller sends now that it is
    committed (the outboxes' sweeps would send them later anyway)."""

    status: str
    webhook: bool
    notify_email: bool
    owner_waiting: uuid.UUID | None = None  # the owner has jobs waiting for this job's slot
    batch_id: uuid.UUID | None = None  # its batch may have finished with it


@dataclass
class Tally:
    """Tokens used across every provider call of this run (a repair makes two), and the
    models tried (fallbacks)."""

    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    text: str = ""
    lane: str | None = None  # the lane of the call that answered
    calls: list[Completion] = field(default_factory=list)
    attempts: fallbacks.Attempts = field(default_factory=fallbacks.Attempts)
    request: CompletionRequest | None = None  # the run's first request, as sent

    def add(self, completion: Completion) -> None:
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        self.model = completion.model or self.model
        self.text = completion.text
        self.lane = completion.lane if completion.model else self.lane
        self.calls.append(completion)

    def usage(self, work: Work) -> jobs.Usage:
        # The sum of the calls' costs, so that the job and its ledger rows agree to the micro-dollar.
        calls = metering.ledger_calls(self.calls, work.model, catalogue.get_catalogue(work.settings))
        return jobs.Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_micros=sum(call.cost_micros for call in calls),
        )

    def ledger(self, work: Work) -> usage_repo.Attempt:
        calls = metering.ledger_calls(self.calls, work.model, catalogue.get_catalogue(work.settings))
        return usage_repo.Attempt(work.job_id, work.attempt, work.user_id, work.tool.name, calls)

    def how_it_ran(self) -> dict[str, Any]:
        """The job's columns that say how it ran: lane, answering model, models tried."""
        ran: dict[str, Any] = {"lane": self.lane}
        if self.attempts.items:
            ran |= {"attempts": self.attempts.items, "answered_by": self.attempts.answered_by}
        return ran


def run_job(
    job_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    provider: Provider | None = None,
    timeout_errors: tuple[type[BaseException], ...] = (),
) -> Finished | None:
    """Run one delivery of a job. Returns how it ended, or None when this delivery
    did not run it or its outcome did not stand (finished, or held by another worker).

    `timeout_errors` are the exceptions the caller's runtime raises at its soft
    time limit (Celery's SoftTimeLimitExceeded); they end the job `timeout`.
    """
    settings = settings or get_settings()
    work = _take(job_id, settings)
    if work is None:
        return None
    tally = Tally()
    expected_chars = work.tool.max_output_tokens * CHARS_PER_TOKEN
    redis = get_redis()
    # The jobs behind it in its queue move up in the same round trip as its `status` event.
    job_stream.publish_all(
        redis,
        job_id,
        [(job_stream.STATUS, {"status": RUNNING, "attempt": work.attempt})],
        also=[queue_position.on_start(job_id, queue=work.queue)],
    )
    deltas = job_stream.DeltaBatcher(redis, job_id, interval=settings.stream_delta_interval)

    def end(status: str, **outcome: Any) -> Finished | None:
        # The streamed text still held goes out with the `done` event, in one round trip.
        return _finish(work, tally, status, unsent=deltas.take(), **outcome)

    try:
        # Inside the try: the first call in a process imports the SDK, which can be slow
        # enough for the soft time limit to land there.
        provider = provider or get_provider(settings)
        lease = Lease(
            job_id,
            lease_seconds=settings.job_lease_seconds,
            expected_chars=expected_chars,
            on_text=deltas.add,  # each streamed piece, after the lease's own look at it
        )
        with lease:

            def wait(seconds: float) -> None:
                # A flex job waiting for room still notices a cancel (or a lost lease).
                until = time.monotonic() + seconds
                while (left := until - time.monotonic()) > 0:
                    lease.check()
                    time.sleep(min(left, 0.5))
                lease.check()

            output = generate(work, provider, tally, on_delta=lease.on_delta, wait=wait)
    except LeaseLost:
        logger.warning("job_id=%s lease lost; another delivery owns the job now", job_id)
        deltas.flush()
        return None
    except Canceled as stop:
        tally.add(stop.partial)
        partial = {"text": tally.text} if work.tool.output == "text" and tally.text else None
        return end(CANCELED, output=partial, code="canceled", message="Canceled while running.")
    except ProviderError as error:
        if error.partial is not None:
            tally.add(error.partial)
        return end(FAILED, code=error.code, message=error.message)
    except timeout_errors:
        message = f"The job ran longer than its {settings.job_soft_time_limit} s limit."
        return end(FAILED, code=TIMEOUT, message=message)
    except Exception:
        end(FAILED, code=INTERNAL_ERROR, message="An unexpected error stopped the job.")
        raise
    return end(SUCCEEDED, output=output)


def generate(
    work: Work, provider: Provider, tally: Tally, *, on_delta=None, wait=time.sleep
) -> dict[str, Any]:
    """Call the provider for one job, going on to its fallback models while they fail,
    and return its output. JSON output gets one repair attempt, from the model that
    answered, when it does not validate."""
    tool = work.tool
    settings = work.settings
    give_up_at = min(work.deadline, time.monotonic() + settings.flex_max_wait)

    def call(request: CompletionRequest) -> Completion:
        return lanes.complete(provider, request, on_delta, give_up_at=give_up_at, wait=wait)

    request = provider_request.build(
        tool, work.input, work.profile, model=work.model, service_tier=work.service_tier
    )
    tally.request = request  # what the response cache keys the answer by
    completion = fallbacks.complete(
        request,
        fallbacks.chain(work.model, tool=tool, plan=work.plan, settings=settings),
        call,
        breaker=Breaker.from_settings(get_redis(), settings),
        models_of=catalogue.get_catalogue(settings),
        attempts=tally.attempts,
    )
    tally.add(completion)
    if tool.output == "text":
        return {"text": completion.text}
    request = replace(request, model=tally.attempts.answered_by or work.model)

    parsed, problem = parse_json(tool, completion.text)
    if problem is None:
        return parsed
    repair = CompletionRequest(
        model=request.model,
        messages=[
            *request.messages,
            {"role": "assistant", "content": completion.text},
            {
                "role": "user",
                "content": f"That reply is not valid: {problem}. Reply again with only the corrected "
                "JSON object, matching the schema exactly.",
            },
        ],
        max_output_tokens=request.max_output_tokens,
        temperature=0.0,
        json_schema=request.json_schema,
        schema_name=request.schema_name,
        service_tier=completion.lane if completion.lane == catalogue.FLEX else None,
    )
    completion = call(repair)
    tally.add(completion)
    parsed, problem = parse_json(tool, completion.text)
    if problem is None:
        return parsed
    raise ProviderError(
        INVALID_OUTPUT,
        f"The model's reply did not match the {tool.name!r} output schema "
        f"after one repair attempt: {problem}.",
    )


def fail(job_id: uuid.UUID, *, code: str, message: str, duration: float | None = None) -> bool:
    """Record a failure from outside the pipeline (a task-level error, such as the hard
    time limit). Returns whether it ended the job; only then is the job counted
    finished, here, because the process that ran it never got to count it. `duration`:
    how long the delivery ran, when the caller knows (the hard limit's own length)."""
    with session_scope() as session:
        failed = jobs.Outcome(FAILED, error_code=code, error_message=message)
        if not jobs.finish(session, job_id=job_id, outcome=failed):
            return False
        tool = jobs.get(session, job_id=job_id).tool
    metrics.job_finished(tool=tool, status=FAILED, code=code, duration=duration)
    logger.info("job_id=%s %s code=%s (recorded outside the pipeline)", job_id, FAILED, code)
    return True


def _take(job_id: uuid.UUID, settings: Settings) -> Work | None:
    logs.bind(job_id=job_id)
    # Every statement here is a compare-and-set that stands alone: no transaction, no Session.
    with standalone() as connection:
        job = jobs.start(
            connection,
            job_id=job_id,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
        )
        if job is None:
            logger.info("job_id=%s not started: finished, expired, or held by another worker", job_id)
            return None
        tool = get_tool(job.tool)
        if tool is None:  # a tool removed after the job was accepted
            if jobs.finish(
                connection,
                job_id=job_id,
                outcome=jobs.Outcome(
                    FAILED,
                    error_code=INVALID_REQUEST,
                    error_message=f"The tool {job.tool!r} no longer exists.",
                ),
            ):
                metrics.job_finished(tool=job.tool, status=FAILED, code=INVALID_REQUEST)
                logger.info("job_id=%s %s code=%s: no tool %s", job_id, FAILED, INVALID_REQUEST, job.tool)
            return None
        profile = provider_request.owner_profile(job.owner_name, job.owner_profile)
        logs.bind(request_id=job.request_id)  # the submit's, whichever message brought the job here
        waited = (
            job.started_at - (job.run_at or job.created_at)
        ).total_seconds()  # a scheduled job's from run_at
        metrics.job_started(tool=job.tool, queue=job.queue, attempt=job.attempt, waited=waited)
        logger.info("job_id=%s started tool=%s attempt=%s", job_id, job.tool, job.attempt)
        return Work(
            webhook=job.webhook_url is not None,
            notify_email=job.notify_email,
            batch_id=job.batch_id,
            cache_mode=job.cache_mode,
            job_id=job.id,
            tool=tool,
            input=dict(job.input),
            model=job.model,
            profile=profile,
            attempt=job.attempt,
            user_id=job.user_id,
            settings=settings,
            plan=get_plan(job.owner_plan),
            service_tier=job.service_tier if job.service_tier == catalogue.FLEX else None,
            queue=job.queue,
        )


def _finish(
    work: Work,
    tally: Tally,
    status: str,
    *,
    output: dict[str, Any] | None = None,
    code: str | None = None,
    message: str | None = None,
    unsent: str = "",
) -> Finished | None:
    """Record the outcome; once it stands, tell the stream's readers: the streamed
    text not sent yet (`unsent`), then `done`, in that order and one round trip."""
    output = storable(output)  # the provider's text, as every store can hold it
    # A large output goes to storage first (outside any session); the row keeps its key.
    row_output, output_key = outputs.store_if_large(
        output, user_id=work.user_id, job_id=work.job_id, settings=work.settings
    )
    reply = output.get("text") if status == SUCCEEDED and work.tool.conversation and output else None
    outcome = jobs.Outcome(
        status,
        output=row_output,
        output_key=output_key,
        error_code=code,
        error_message=message,
        usage=tally.usage(work),
        ledger=tally.ledger(work),
        # Billed if this attempt finished the job with something to show for it.
        billable=status in metering.BILLED_STATUSES,
        **tally.how_it_ran(),
    )
    ended = _record(work.job_id, outcome, reply=reply)
    _count_usage(work, tally)
    if not ended.done:
        logger.warning("job_id=%s outcome %s dropped: the job was no longer running", work.job_id, status)
        return None
    _announce(work, tally, status, code=code, message=message, unsent=unsent)
    if status == SUCCEEDED and output_key is None:
        _cache(work, tally, row_output)
    return Finished(
        status,
        webhook=work.webhook,
        notify_email=work.notify_email,
        owner_waiting=ended.owner_waiting,
        batch_id=work.batch_id,
    )


def _cache(work: Work, tally: Tally, output: dict[str, Any]) -> None:
    """Keep the answer for the response cache, unless the submit said `bypass`. An
    output large enough for storage is not kept: the cache holds rows, not files; nor is a
    fallback's answer: the key names the model asked for, and another one answered."""
    if work.cache_mode == response_cache.BYPASS or tally.request is None:
        return
    if tally.attempts.answered_by not in (None, work.model):
        return
    if not response_cache.applies(work.tool, work.settings):
        return
    spent = tally.usage(work)
    response_cache.store(
        request=tally.request,
        tool=work.tool,
        user_id=work.user_id,
        job_id=work.job_id,
        output=output,
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        cost_micros=spent.cost_micros,
        settings=work.settings,
    )


def _count_usage(work: Work, tally: Tally) -> None:
    spent = tally.usage(work)  # paid for whether or not this delivery's outcome stands
    metrics.usage(
        model=tally.model or work.model,
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        cost_micros=spent.cost_micros,
    )


def _announce(
    work: Work, tally: Tally, status: str, *, code: str | None, message: str | None, unsent: str
) -> None:
    """Count the outcome that stands, then tell the stream's readers and the log."""
    # Counted as soon as it stands: a process killed after the commit is not left
    # uncounted for the length of a Redis round trip, or an outage's timeout.
    ran = time.monotonic() - work.started
    metrics.job_finished(tool=work.tool.name, status=status, code=code, duration=ran)
    error = {"code": code, "message": message} if code else None
    # The client waiting on the job first; what follows is bookkeeping and the next job.
    last = [(job_stream.DELTA, {"text": unsent})] if unsent else []
    # A success also tells what the jobs waiting for this tool and model can expect, in
    # the same round trip.
    also = [queue_position.on_success(tool=work.tool.name, model=work.model, seconds=ran)]
    job_stream.publish_all(
        get_redis(),
        work.job_id,
        [*last, (job_stream.DONE, {"status": status, "error": error})],
        also=also if status == SUCCEEDED else (),
    )
    tokens = f"{tally.input_tokens}/{tally.output_tokens}"
    logger.info("job_id=%s %s code=%s tokens=%s", work.job_id, status, code, tokens)


# Shared by every job, as the provider's retry policy is (its docstring says why): the
# decorator form copies the policy, and makes a new greenlet-local, on every call.
RECORD_RETRY = Retrying(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_delay(RECORD_RETRY_SECONDS),
    wait=wait_exponential(multiplier=0.5, max=5),
    before_sleep=before_sleep_log(logger, logging.WARNING),
    reraise=True,
)


def _record(job_id: uuid.UUID, outcome: jobs.Outcome, *, reply: str | None = None) -> jobs.RunEnded:
    """Write the outcome, riding out a database restart rather than losing a result
    that was paid for. If the database stays away, the lease lapses and the reaper
    re-runs the job once it is back. The attempt's provider calls go to the usage
    ledger in the outcome's own statement, billed only if the outcome stands and is
    `billable`. The same statement says whether the owner has jobs
    waiting for the slot (jobs.finish_run). A conversation's reply is stored in the
    same transaction, so a succeeded turn always has exactly one; without one, the
    statement needs no transaction around it. Returns whether the outcome stands."""
    return RECORD_RETRY(_write_outcome, job_id, outcome, reply)


def _write_outcome(job_id: uuid.UUID, outcome: jobs.Outcome, reply: str | None) -> jobs.RunEnded:
    if reply is None:
        with standalone() as connection:
            return jobs.finish_run(connection, job_id=job_id, outcome=outcome)
    with session_scope() as session:
        ended = jobs.finish_run(session, job_id=job_id, outcome=outcome)
        if ended.done:
            conversations.add_reply(session, job_id=job_id, content=reply)
    return ended


def parse_json(tool: Tool, text: str) -> tuple[Any, str | None]:
    """A JSON tool's reply, parsed and checked against its output schema: (the output,
    None), or (None, what is wrong)."""
    body = text.strip()
    if body.startswith("```"):  # models wrap JSON in fences despite being told not to
        body = body.strip("`").removeprefix("json").strip()
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as error:
        return None, f"it is not JSON ({error.msg} at line {error.lineno} column {error.colno})"
    errors = tool.output_errors(parsed)
    if errors:
        where, messages = next(iter(errors.items()))
        return None, f"{where}: {messages[0]}"
    return parsed, None
